"""Helpers of the compute tests: an image to boot from, booting, waiting for a status,
volumes to attach."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgefed.core.settings import HostSpec, SiteSettings
from edgefed.drivers.fake import FakeDriver
from edgefed.services.compute.state import ComputeState
from edgefed.store.compute import ServerRecord
from edgefed.store.image import ImageRepository
from edgefed.testkit.inprocess import InProcessSite, site_settings
from edgefed.testkit.tokens import forge_token
from edgefed.testkit.wait import eventually

V = {"OpenStack-API-Version": "compute 2.96"}


async def make_image(site: InProcessSite, **extra: Any) -> str:
    ctx = site.app.state.ctx
    values: dict[str, Any] = {
        "owner": None,
        "name": "cirros",
        "disk_format": "qcow2",
        "container_format": "bare",
        "visibility": "public",
        "data": b"fake disk image" * 64,
        "data_dir": site.settings.data_dir,
        **extra,
    }
    record = await ImageRepository(ctx.store).create(**values)
    return record.id


async def wait_for(
    site: InProcessSite, headers: dict[str, str], server_id: str, status: str, timeout: float = 10
) -> dict[str, Any]:
    """Wait (bounded) until the server has ``status``; return its last view."""
    last: dict[str, Any] = {}

    async def reached() -> bool:
        r = await site.client.get(f"/compute/v2.1/servers/{server_id}", headers=headers)
        if status == "DELETED" and r.status_code == 404:
            last.clear()
            return True
        assert r.status_code == 200, r.text
        last.update(r.json()["server"])
        return bool(last["status"] == status)

    await eventually(reached, within=timeout, every=0.01, what=f"server {server_id} {status}")
    return last


def two_host_settings(root: Path, database_url: str | None) -> SiteSettings:
    """A site of two fake hosts, edge-1 and edge-2, whose transitions take no time."""
    return site_settings(
        root, database_url=database_url,
        compute_hosts=(HostSpec(name="edge-1"), HostSpec(name="edge-2")),
        fake_transition_seconds=0.0,
    )  # fmt: skip


async def server_record(site: InProcessSite, server_id: str) -> ServerRecord:
    """The server as the site keeps it (its host, its migration)."""
    server = await site.app.state.ctx.slots.require(ComputeState).servers.get(server_id)
    assert server is not None
    return server


async def boot(
    site: InProcessSite, headers: dict[str, str], image_id: str, **extra: Any
) -> dict[str, Any]:
    server = {"name": "vm", "imageRef": image_id, "flavorRef": "1", "networks": "auto", **extra}
    r = await site.client.post("/compute/v2.1/servers", json={"server": server}, headers=headers)
    assert r.status_code == 202, r.text
    return r.json()["server"]


# -- volumes (the volume service of the same site) -----------------------------------

VOL = "/volume/v3"
CINDER = {"OpenStack-API-Version": "volume 3.71"}


def member(site: InProcessSite, project: str) -> dict[str, str]:
    """A member of ``project`` at the highest compute microversion."""
    token = forge_token(site.app.state.ctx, user=f"u-{project}", project=project, role="member")
    return {"X-Auth-Token": token, **V}


def fake(site: InProcessSite) -> FakeDriver:
    driver = site.app.state.ctx.slots.require(ComputeState).driver
    assert isinstance(driver, FakeDriver)
    return driver


async def new_volume(site: InProcessSite, h: dict[str, str], **body: Any) -> str:
    r = await site.client.post(
        f"{VOL}/volumes", json={"volume": {"size": 1, **body}}, headers={**h, **CINDER}
    )
    assert r.status_code == 202, r.text
    return str(r.json()["volume"]["id"])


async def volume(site: InProcessSite, h: dict[str, str], volume_id: str) -> dict[str, Any]:
    r = await site.client.get(f"{VOL}/volumes/{volume_id}", headers={**h, **CINDER})
    assert r.status_code == 200, r.text
    return r.json()["volume"]  # type: ignore[no-any-return]
