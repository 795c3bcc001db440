"""The image ``edgefed up`` registers at each site: edgefed's tiny guest.

``make guest-image`` (a step of ``make run``) builds a whole-disk qcow2 from Debian
packages into ``.cache/guest-image`` (edgefed.guest_image): syslinux, a Debian cloud
kernel and a busybox initramfs that reads the config drive, configures its NICs, runs a
user-data script and prints ``EDGEFED-GUEST …`` markers on the serial console. When it
is there, every site of the try-out fleet gets it as the public image ``edgefed-tiny``,
so the README's tour boots a real guest (with ``compute_driver = "qemu"``) or a
simulated one (the fake driver) from the same commands.

Idempotent: a site that already has an active image of that name keeps it (its data
lives in the site's data directory across runs); one left half-uploaded by an
interrupted run is replaced. Nothing here stops the fleet: a site that refuses is
reported and skipped.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

GUEST_IMAGE_DIR = Path(".cache/guest-image")
IMAGE_NAME = "edgefed-tiny"
TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class SeedImage:
    """An image to register: its data and what Glance is told about it."""

    name: str
    disk: Path
    disk_format: str
    min_ram: int = 0
    min_disk: int = 0
    properties: dict[str, str] = field(default_factory=dict)


def tiny_guest(directory: Path = GUEST_IMAGE_DIR) -> SeedImage | None:
    """The tiny guest's whole-disk image if ``make guest-image`` built it, else None."""
    disk, manifest_file = directory / "disk.qcow2", directory / "manifest.json"
    try:
        manifest = json.loads(manifest_file.read_text())
    except (OSError, ValueError):
        return None
    if not disk.is_file():
        return None
    kernel = str(manifest.get("kernel_package", "")).partition("=")[2]
    return SeedImage(
        name=IMAGE_NAME,
        disk=disk,
        disk_format="qcow2",
        min_ram=64,
        min_disk=1,
        properties={
            # Glance's common image properties (os_*), and the buses the guest has drivers for.
            "os_type": "linux",
            "os_distro": "edgefed-tiny",
            "os_version": kernel or "unknown",
            "hw_disk_bus": "virtio",
            "hw_vif_model": "virtio",
            "description": "edgefed's tiny guest: busybox, config drive, serial console",
        },
    )


async def _login(http: httpx.AsyncClient, password: str) -> dict[str, str]:
    user = {"name": "admin", "domain": {"id": "default"}, "password": password}
    body = {
        "auth": {
            "identity": {"methods": ["password"], "password": {"user": user}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}},
        }
    }
    r = await http.post("/identity/v3/auth/tokens", json=body)
    r.raise_for_status()
    return {"X-Auth-Token": r.headers["x-subject-token"]}


async def register(http: httpx.AsyncClient, headers: dict[str, str], image: SeedImage) -> str:
    """Register ``image`` at the site ``http`` talks to; its id (the existing one when an
    active image of that name is there)."""
    r = await http.get("/image/v2/images", params={"name": image.name}, headers=headers)
    r.raise_for_status()
    for found in r.json()["images"]:
        if found["status"] == "active":
            return str(found["id"])
        (await http.delete(f"/image/v2/images/{found['id']}", headers=headers)).raise_for_status()
    body: dict[str, Any] = {
        "name": image.name,
        "disk_format": image.disk_format,
        "container_format": "bare",
        "visibility": "public",
        "min_ram": image.min_ram,
        "min_disk": image.min_disk,
        **image.properties,
    }
    r = await http.post("/image/v2/images", json=body, headers=headers)
    r.raise_for_status()
    image_id = str(r.json()["id"])
    upload = {**headers, "Content-Type": "application/octet-stream"}
    r = await http.put(
        f"/image/v2/images/{image_id}/file", content=image.disk.read_bytes(), headers=upload
    )
    r.raise_for_status()
    return image_id


async def seed_images(
    sites: Sequence[tuple[str, str]],
    *,
    password: str,
    verify: ssl.SSLContext | bool = True,
    directory: Path = GUEST_IMAGE_DIR,
) -> list[str]:
    """Register the tiny guest at each ``(name, url)``; lines to show the user."""
    image = tiny_guest(directory)
    if image is None:
        return [f"no guest image in {directory} (make guest-image builds it): none registered"]
    lines = []
    for name, url in sites:
        try:
            async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT, verify=verify) as http:
                image_id = await register(http, await _login(http, password), image)
        except (httpx.HTTPError, KeyError, ValueError, OSError) as exc:
            lines.append(f"{name}: could not register {image.name} ({exc})")
            continue
        lines.append(f"{name}: image {image.name} {image_id}")
    return lines
