"""The tiny guest image ``edgefed up`` registers at each site (cli/up_seed.py)."""

from __future__ import annotations

import json
from pathlib import Path

from edgefed.cli.up_seed import IMAGE_NAME, SeedImage, register, seed_images, tiny_guest
from edgefed.store.image import ImageRepository, blob_path
from edgefed.testkit.inprocess import InProcessSite

QCOW2 = b"QFI\xfb\x00\x00\x00\x03" + b"\0" * 4096


def built_guest_image(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "disk.qcow2").write_bytes(QCOW2)
    manifest = {"kernel_package": "linux-image-6.1.0-57-cloud-amd64=6.1.192-3"}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


def test_no_image_until_make_guest_image_built_it(tmp_path: Path) -> None:
    assert tiny_guest(tmp_path) is None
    (tmp_path / "manifest.json").write_text("{}")
    assert tiny_guest(tmp_path) is None  # no disk
    image = tiny_guest(built_guest_image(tmp_path))
    assert image is not None and image.name == IMAGE_NAME and image.disk_format == "qcow2"
    assert image.properties["os_type"] == "linux"
    assert image.properties["os_version"] == "6.1.192-3"


async def test_register_once_with_its_format_and_os_properties(
    site: InProcessSite, admin_headers: dict[str, str], tmp_path: Path
) -> None:
    image = tiny_guest(built_guest_image(tmp_path / "guest"))
    assert image is not None
    first = await register(site.client, admin_headers, image)
    record = await ImageRepository(site.app.state.ctx.store).get(first)
    assert record is not None and record.status == "active"
    assert (record.disk_format, record.container_format) == ("qcow2", "bare")
    assert record.visibility == "public" and (record.min_ram, record.min_disk) == (64, 1)
    assert record.properties["os_distro"] == "edgefed-tiny"
    assert blob_path(site.settings.data_dir, record).read_bytes() == QCOW2
    # A second run keeps it.
    assert await register(site.client, admin_headers, image) == first


async def test_a_half_uploaded_image_is_replaced(
    site: InProcessSite, admin_headers: dict[str, str], tmp_path: Path
) -> None:
    r = await site.client.post(
        "/image/v2/images",
        json={"name": IMAGE_NAME, "disk_format": "qcow2", "container_format": "bare"},
        headers=admin_headers,
    )
    stale = r.json()["id"]
    disk = tmp_path / "d.qcow2"
    disk.write_bytes(QCOW2)
    fresh = await register(
        site.client, admin_headers, SeedImage(name=IMAGE_NAME, disk=disk, disk_format="qcow2")
    )
    assert fresh != stale
    assert await ImageRepository(site.app.state.ctx.store).get(stale) is None


async def test_seed_reports_what_it_did(tmp_path: Path) -> None:
    lines = await seed_images([("Berlin", "http://127.0.0.1:9")], password="x", directory=tmp_path)
    assert lines == [f"no guest image in {tmp_path} (make guest-image builds it): none registered"]
    built_guest_image(tmp_path)
    lines = await seed_images([("Berlin", "http://127.0.0.1:9")], password="x", directory=tmp_path)
    assert len(lines) == 1 and lines[0].startswith("Berlin: could not register edgefed-tiny (")
