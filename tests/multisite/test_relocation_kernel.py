"""A kernel-boot guest (its image names a ``kernel_id`` and ``ramdisk_id``) relocated
from Berlin to Paris, sites in this process on the fake driver: the kernel and ramdisk
go after the disk in its transfer, unless Paris holds them already (the same image id
and data); at Paris the guest is spawned with them and the same command line."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from relocation_support import DISK, NOVA, C, moved, relocate, status_is

from edgefed.drivers.fake import FakeDriver
from edgefed.services.compute.state import ComputeState
from edgefed.store.compute import Relocations
from edgefed.store.image import ImageRepository
from edgefed.testkit.inprocess import InProcessSite
from edgefed.testkit.inprocess_fleet import admin, ctx_of, fleet

KERNEL = os.urandom(3 << 20)
RAMDISK = os.urandom(1 << 20)
CMDLINE = "console=ttyS0 root=/dev/vda1"


async def boot_file(
    site: InProcessSite, kind: str, data: bytes, image_id: str | None = None
) -> str:
    fmt = "aki" if kind == "kernel" else "ari"
    image = await ImageRepository(ctx_of(site).store).create(
        owner=None, image_id=image_id, name=f"tiny-{kind}", disk_format=fmt,
        container_format=fmt, visibility="public", data=data, data_dir=site.settings.data_dir,
    )  # fmt: skip
    return image.id


async def kernel_server(berlin: InProcessSite, kernel_id: str, ramdisk_id: str) -> str:
    image = await ImageRepository(ctx_of(berlin).store).create(
        owner=None, name="tiny", disk_format="raw", container_format="bare",
        visibility="public", data=DISK, data_dir=berlin.settings.data_dir,
        properties={"kernel_id": kernel_id, "ramdisk_id": ramdisk_id,
                    "os_command_line": CMDLINE},
    )  # fmt: skip
    h = {**admin(berlin), **NOVA}
    body = {"server": {"name": "shop", "imageRef": image.id, "flavorRef": "1",
                       "networks": "none"}}  # fmt: skip
    r = await berlin.client.post(f"{C}/servers", json=body, headers=h)
    assert r.status_code == 202, r.text
    server_id = str(r.json()["server"]["id"])
    await status_is(berlin, h, server_id, "ACTIVE")
    return server_id


async def moved_to_paris(berlin: InProcessSite, paris: InProcessSite, server_id: str) -> FakeDriver:
    h = {**admin(berlin), **NOVA}
    r = await relocate(berlin, h, server_id)
    assert r.status_code == 202, r.text
    await moved(berlin, h, server_id)
    await status_is(paris, {**admin(paris), **NOVA}, server_id, "ACTIVE")
    driver = ctx_of(paris).slots.require(ComputeState).driver
    assert isinstance(driver, FakeDriver)
    return driver


def sha(path: Path | None) -> str:
    assert path is not None
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_a_kernel_boot_guest_arrives_with_its_kernel_and_ramdisk(tmp_path: Path) -> None:
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True) as s:
        berlin, paris = s["Berlin"], s["Paris"]
        kernel_id = await boot_file(berlin, "kernel", KERNEL)
        ramdisk_id = await boot_file(berlin, "ramdisk", RAMDISK)
        server_id = await kernel_server(berlin, kernel_id, ramdisk_id)

        driver = await moved_to_paris(berlin, paris, server_id)
        spec = driver.instances[server_id].spec
        assert spec.kernel is not None and spec.ramdisk is not None
        assert sha(spec.kernel.path) == hashlib.sha256(KERNEL).hexdigest()
        assert sha(spec.ramdisk.path) == hashlib.sha256(RAMDISK).hexdigest()
        assert spec.kernel_cmdline == CMDLINE
        assert sha(spec.image_path) == hashlib.sha256(DISK).hexdigest()
        [record] = await Relocations(ctx_of(berlin).store).list(direction="out")
        assert record.disk_size == len(DISK) + len(KERNEL) + len(RAMDISK)
        assert not list((paris.settings.data_dir / "relocations").glob("*"))
        images = ImageRepository(ctx_of(paris).store)
        kernel = await images.get(spec.kernel.id)
        assert kernel is not None and kernel.os_hidden and kernel.disk_format == "aki"

        # Made for this server alone, they go with it.
        at_paris = {**admin(paris), **NOVA}
        r = await paris.client.delete(f"{C}/servers/{server_id}", headers=at_paris)
        assert r.status_code == 204, r.text
        await ctx_of(paris).slots.require(ComputeState).lifecycle.idle()
        assert await images.get(spec.kernel.id) is None
        assert await images.get(spec.ramdisk.id) is None


async def test_a_kernel_paris_holds_is_not_sent_again(tmp_path: Path) -> None:
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True) as s:
        berlin, paris = s["Berlin"], s["Paris"]
        kernel_id = await boot_file(berlin, "kernel", KERNEL)
        ramdisk_id = await boot_file(berlin, "ramdisk", RAMDISK)
        await boot_file(paris, "kernel", KERNEL, image_id=kernel_id)  # as an image sync makes
        server_id = await kernel_server(berlin, kernel_id, ramdisk_id)

        driver = await moved_to_paris(berlin, paris, server_id)
        spec = driver.instances[server_id].spec
        assert spec.kernel is not None and spec.kernel.id == kernel_id
        assert spec.ramdisk is not None
        assert sha(spec.ramdisk.path) == hashlib.sha256(RAMDISK).hexdigest()
        [record] = await Relocations(ctx_of(berlin).store).list(direction="out")
        assert record.disk_size == len(DISK) + len(RAMDISK)  # the kernel stayed at home

        r = await paris.client.delete(f"{C}/servers/{server_id}", headers={**admin(paris), **NOVA})
        assert r.status_code == 204, r.text
        await ctx_of(paris).slots.require(ComputeState).lifecycle.idle()
        assert await ImageRepository(ctx_of(paris).store).get(kernel_id) is not None  # not its
