"""The real ``openstack`` CLI and openstacksdk drive a site's image service unchanged."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from edgefed.testkit.osc import OpenStackCLI
from edgefed.testkit.process import SiteProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def disk_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("images") / "disk.qcow2"
    path.write_bytes(os.urandom(3 * 1024 * 1024 + 12345))
    return path


def test_cli_create_list_show_save_set_delete(
    osc: OpenStackCLI, disk_image: Path, tmp_path: Path
) -> None:
    data = disk_image.read_bytes()
    created = osc.json(
        "image",
        "create",
        "--file",
        str(disk_image),
        "--disk-format",
        "qcow2",
        "--container-format",
        "bare",
        "cli-image",
    )
    image_id = created["id"]
    assert created["status"] == "active"

    listed = osc.json("image", "list")
    assert [i["Name"] for i in listed if i["ID"] == image_id] == ["cli-image"]

    shown = osc.json("image", "show", image_id)
    assert shown["checksum"] == hashlib.md5(data).hexdigest()
    # OSC files the secure hash under "properties" (it shows sdk names at the top level).
    flat = {**shown.get("properties", {}), **shown}
    assert flat["os_hash_algo"] == "sha512"
    assert flat["os_hash_value"] == hashlib.sha512(data).hexdigest()
    assert shown["size"] == len(data)

    out = tmp_path / "out.img"
    osc.run("image", "save", "--file", str(out), image_id)
    assert out.read_bytes() == data

    osc.run("image", "set", "--property", "edge_role=cache", "--tag", "gold", image_id)
    shown = osc.json("image", "show", image_id)
    assert shown["properties"]["edge_role"] == "cache"
    assert "gold" in shown["tags"]

    osc.run("image", "delete", image_id)
    gone = osc.run("image", "show", image_id, check=False)
    assert gone.returncode != 0
    assert (
        "No Image found" in gone.stderr or "404" in gone.stderr or "Could not find" in gone.stderr
    )


def test_sdk_create_and_download(site_process: SiteProcess, tmp_path: Path) -> None:
    import openstack

    conn = openstack.connect(**site_process.clouds_entry()["auth"], identity_api_version="3")  # type: ignore[arg-type]
    try:
        data = os.urandom(2 * 1024 * 1024 + 7)
        source = tmp_path / "sdk.raw"
        source.write_bytes(data)
        image = conn.image.create_image(
            name="sdk-image",
            filename=str(source),
            disk_format="raw",
            container_format="bare",
            wait=True,
        )
        # The sdk returns the image as created (queued), as with Glance: fetch it again.
        fetched = conn.image.get_image(image.id)
        assert fetched.status == "active"
        assert fetched.checksum == hashlib.md5(data).hexdigest()
        response = conn.image.download_image(image.id)
        assert response.content == data
        target = tmp_path / "sdk.out"
        conn.image.download_image(image.id, output=str(target))
        assert target.read_bytes() == data
        conn.image.delete_image(image.id)
        assert conn.image.find_image(image.id) is None
    finally:
        conn.close()


def _connect(site_process: SiteProcess):  # type: ignore[no-untyped-def]
    import openstack

    return openstack.connect(**site_process.clouds_entry()["auth"], identity_api_version="3")


def test_answered_upload_survives_kill_9(site_process: SiteProcess, tmp_path: Path) -> None:
    data = os.urandom(1024 * 1024 + 3)
    conn = _connect(site_process)
    image = conn.image.create_image(
        name="durable", data=data, disk_format="raw", container_format="bare"
    )
    conn.close()
    site_process.kill()
    site_process.start()
    conn = _connect(site_process)
    try:
        shown = conn.image.get_image(image.id)
        assert shown.status == "active"
        assert shown.checksum == hashlib.md5(data).hexdigest()
        assert conn.image.download_image(image.id).content == data
    finally:
        conn.close()
