"""``createImage`` (``openstack server image create``): the driver's disk becomes an
image with the right format, and a server boots from it."""

from __future__ import annotations

from pathlib import Path

from compute_testkit import boot, make_image, wait_for

from edgefed.drivers.base import Snapshot
from edgefed.services.compute.state import ComputeState
from edgefed.store.image import ImageRepository, blob_path
from edgefed.testkit.inprocess import InProcessSite

C = "/compute/v2.1"
QCOW2_MAGIC = b"QFI\xfb\x00\x00\x00\x03"


def state_of(site: InProcessSite) -> ComputeState:
    return site.app.state.ctx.slots.require(ComputeState)


async def snapshot(site: InProcessSite, h: dict[str, str], server_id: str, name: str) -> str:
    r = await site.client.post(
        f"{C}/servers/{server_id}/action", json={"createImage": {"name": name}}, headers=h
    )
    assert r.status_code == 202, r.text
    await state_of(site).lifecycle.idle()
    return str(r.json()["image_id"])


async def test_snapshot_uploads_the_disk_and_boots_again(site, h):
    data = b"a bootable disk" * 4096
    source = await make_image(site, data=data, min_ram=64)
    created = await boot(site, h, source)
    await wait_for(site, h, created["id"], "ACTIVE")
    image_id = await snapshot(site, h, created["id"], "snap")
    repo = ImageRepository(site.app.state.ctx.store)
    image = await repo.get(image_id)
    assert image is not None and image.status == "active"
    assert image.disk_format == "qcow2" and image.container_format == "bare"
    assert image.size == len(data) and image.min_ram == 64
    assert image.properties["base_image_ref"] == source
    assert image.properties["instance_uuid"] == created["id"]
    path = blob_path(site.settings.data_dir, image)
    assert path.read_bytes() == data
    # The server is back to no task, and a new server boots from the snapshot's data.
    shown = await wait_for(site, h, created["id"], "ACTIVE")
    assert shown["OS-EXT-STS:task_state"] is None
    again = await boot(site, h, image_id, name="from-snap")
    await wait_for(site, h, again["id"], "ACTIVE")
    spec = state_of(site).driver.instances[again["id"]].spec  # type: ignore[attr-defined]
    assert spec.image_id == image_id and Path(spec.image_path).read_bytes() == data


async def test_snapshot_data_from_the_driver(site, h, image_id, monkeypatch):
    """A driver that hands bytes rather than a file."""
    created = await boot(site, h, image_id)
    await wait_for(site, h, created["id"], "ACTIVE")

    async def from_bytes(instance_id: str) -> Snapshot:
        return Snapshot(data=b"disk bytes")

    monkeypatch.setattr(state_of(site).driver, "snapshot", from_bytes)
    image = await ImageRepository(site.app.state.ctx.store).get(
        await snapshot(site, h, created["id"], "bytes")
    )
    assert image is not None and image.status == "active" and image.size == 10


async def test_a_qcow2_snapshot_of_a_raw_image_is_a_qcow2_image(site, h, tmp_path, monkeypatch):
    """The QEMU driver snapshots to a standalone qcow2 whatever the base image was."""
    raw = await make_image(site, disk_format="raw", data=b"\0" * 4096)
    created = await boot(site, h, raw)
    await wait_for(site, h, created["id"], "ACTIVE")
    disk = tmp_path / "snap.qcow2"
    disk.write_bytes(QCOW2_MAGIC + b"\0" * 1024)

    async def qcow2(instance_id: str) -> Snapshot:
        return Snapshot(path=disk, disk_format="qcow2")

    monkeypatch.setattr(state_of(site).driver, "snapshot", qcow2)
    image = await ImageRepository(site.app.state.ctx.store).get(
        await snapshot(site, h, created["id"], "q")
    )
    assert image is not None and image.status == "active"
    assert image.disk_format == "qcow2"
