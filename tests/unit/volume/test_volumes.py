"""Volumes through the Cinder API: what a new one looks like, where its data is, what
a create refuses and in which words, lists, updates and deletes."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.unit.volume.cinder_kit import (
    action,
    admin,
    as_,
    delete,
    fault,
    get,
    post,
    project_id,
    put,
    shown,
    snapshot,
    volume,
)

from edgefed.services.volume.state import VolumeState
from edgefed.testkit.inprocess import InProcessSite

GIB = 1 << 30


def read_at(path: Path, offset: int, size: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(size)


def data_file(site: InProcessSite, volume_id: str) -> Path:
    return site.app.state.ctx.settings.data_dir / "volumes" / f"{volume_id}.raw"


async def test_a_new_volume_is_available_with_a_sparse_file_of_its_size(site) -> None:
    h = as_(site)
    vol = await volume(site, h, 2, name="db", description="the shop's", metadata={"tier": "gold"})
    assert (vol["status"], vol["size"], vol["name"], vol["description"]) == (
        "available",
        2,
        "db",
        "the shop's",
    )
    assert vol["volume_type"] == "__DEFAULT__" and vol["bootable"] == "false"
    assert vol["metadata"] == {"tier": "gold"} and vol["attachments"] == []
    assert vol["availability_zone"] == "nova" and vol["multiattach"] is False
    assert vol["consumes_quota"] is True and vol["volume_type_id"]
    # Cinder's extensions add the owner to show and the lists, not to the create
    seen = await shown(site, h, f"volumes/{vol['id']}", "volume")
    assert "os-vol-tenant-attr:tenant_id" not in vol
    assert seen.pop("os-vol-tenant-attr:tenant_id") == project_id("alpha")
    assert seen == vol
    path = data_file(site, vol["id"])
    assert path.stat().st_size == 2 * GIB
    assert path.stat().st_blocks * 512 < GIB  # sparse: nothing written yet


async def test_fields_follow_the_microversion(site) -> None:
    vol = await volume(site, as_(site, version="3.0"))
    assert "volume_type_id" not in vol and "consumes_quota" not in vol and "group_id" not in vol
    # admins see the host; members do not
    assert "os-vol-host-attr:host" not in vol
    seen = await shown(site, admin(site), f"volumes/{vol['id']}", "volume")
    assert seen["os-vol-host-attr:host"] == "Berlin@file#file"


@pytest.mark.parametrize("size", [0, -1, "x", 1.5, True, None])
async def test_a_size_that_is_not_a_positive_integer_is_refused(site, size) -> None:
    r = await post(site, as_(site), "volumes", {"volume": {"size": size}})
    fault(r, 400, "Invalid volume size provided for create request")
    assert (await get(site, as_(site), "volumes")).json()["volumes"] == []


async def test_create_refusals_name_their_cause(site) -> None:
    h = as_(site)
    cases = [
        ({"size": 1, "volume_type": "gold"}, 404, "Volume type with name gold could not be found."),
        ({"size": 1, "availability_zone": "mars"}, 400, "Availability zone 'mars' is invalid."),
        ({"size": 1, "multiattach": True}, 400, "multiattach parameter has been removed"),
        ({"size": 1, "snapshot_id": "nope"}, 404, "Snapshot nope could not be found."),
        ({"size": 1, "source_volid": "nope"}, 404, "Volume nope could not be found."),
        ({"size": 1, "imageRef": "nope"}, 400, "Invalid image identifier or unable to access"),
        ({"size": 1, "metadata": {"k": 1}}, 400, "is not of type 'string'"),
        ({"size": 1, "name": "x" * 256}, 400, "is too long"),
        (
            {"size": 1, "bogus": 1},
            400,
            "Additional properties are not allowed ('bogus' was unexpected)",
        ),
    ]
    for body, status, words in cases:
        fault(await post(site, h, "volumes", {"volume": body}), status, words)
    fault(await post(site, h, "volumes", {"size": 1}), 400, "'volume' is a required property")
    r = await site.client.post("/volume/v3/volumes", content=b"{", headers=h)
    fault(r, 400, "Malformed request body")
    assert (await get(site, h, "volumes")).json()["volumes"] == []


async def test_a_reader_reads_but_does_not_create(site) -> None:
    r = await post(site, as_(site, "reader"), "volumes", {"volume": {"size": 1}})
    fault(r, 403)
    vol = await volume(site, as_(site))
    assert (await get(site, as_(site, "reader"), f"volumes/{vol['id']}")).status_code == 200
    fault(
        await get(site, as_(site, project="beta"), f"volumes/{vol['id']}"),
        404,
        f"Volume {vol['id']} could not be found.",
    )
    fault(await delete(site, as_(site, "reader"), f"volumes/{vol['id']}"), 403)


async def test_from_a_snapshot_and_from_a_volume_the_data_is_copied(site) -> None:
    h = as_(site)
    vol = await volume(site, h, 1)
    with open(data_file(site, vol["id"]), "r+b") as f:
        f.seek(4096)
        f.write(b"the shop's orders")
    snap = await snapshot(site, h, vol["id"], name="s1")
    clone = await volume(site, h, None, snapshot_id=snap["id"])
    assert clone["snapshot_id"] == snap["id"] and clone["size"] == 1
    assert read_at(data_file(site, clone["id"]), 4096, 17) == b"the shop's orders"
    copy = await volume(site, h, 3, source_volid=vol["id"])
    assert copy["source_volid"] == vol["id"] and copy["size"] == 3
    assert data_file(site, copy["id"]).stat().st_size == 3 * GIB
    assert read_at(data_file(site, copy["id"]), 4096, 17) == b"the shop's orders"
    r = await post(site, h, "volumes", {"volume": {"size": 1, "source_volid": copy["id"]}})
    fault(r, 400, "Volume size '1'GB cannot be smaller than original volume size 3GB.")


async def image_with(site, data: bytes, disk_format: str = "raw", **extra) -> dict:
    h = admin(site)
    body = {
        "name": "cirros",
        "disk_format": disk_format,
        "container_format": "bare",
        "visibility": "public",
        **extra,
    }
    image = (await site.client.post("/image/v2/images", json=body, headers=h)).json()
    r = await site.client.put(
        f"/image/v2/images/{image['id']}/file",
        content=data,
        headers={**h, "Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 204, r.text
    return image


async def test_from_an_image_it_holds_its_bytes_and_keeps_its_facts(site) -> None:
    image = await image_with(site, b"x" * 1024, min_disk=2)
    r = await post(site, as_(site), "volumes", {"volume": {"size": 1, "imageRef": image["id"]}})
    fault(r, 400, "Volume size 1GB cannot be smaller than the image minDisk size 2GB.")
    made = await volume(site, as_(site), 2, imageRef=image["id"])
    vol = await shown(site, as_(site), f"volumes/{made['id']}", "volume")
    assert vol["bootable"] == "true" and vol["status"] == "available"
    assert vol["volume_image_metadata"]["image_id"] == image["id"]
    assert vol["volume_image_metadata"]["image_name"] == "cirros"
    path = data_file(site, vol["id"])
    assert read_at(path, 0, 1025) == b"x" * 1024 + b"\0"
    assert path.stat().st_size == 2 * GIB


@pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img is not installed")
async def test_a_qcow2_image_is_converted_to_raw(site, tmp_path) -> None:
    raw = tmp_path / "disk.raw"
    raw.write_bytes(b"boot sector" + bytes(65536 - 11))
    qcow2 = tmp_path / "disk.qcow2"
    subprocess.run(
        ["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(qcow2)], check=True
    )
    image = await image_with(site, qcow2.read_bytes(), "qcow2")
    vol = await volume(site, as_(site), 1, imageRef=image["id"])
    assert read_at(data_file(site, vol["id"]), 0, 11) == b"boot sector"
    # bytes that are not qcow2 are refused before any volume is made
    bad = await image_with(site, b"not a qcow2 at all" * 100, "qcow2")
    r = await post(site, as_(site), "volumes", {"volume": {"size": 1, "imageRef": bad["id"]}})
    fault(r, 400, f"Image {bad['id']} cannot be read as qcow2")
    assert len((await get(site, as_(site), "volumes")).json()["volumes"]) == 1


@pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img is not installed")
async def test_an_image_that_reads_a_host_file_is_refused(site, tmp_path) -> None:
    """A tenant's qcow2 whose backing file is a file of the site's host, or a VMDK whose
    extent is one, would have qemu-img copy that file into a volume the tenant reads."""
    secret = tmp_path / "host-secret"
    secret.write_bytes(b"the site's private key" + bytes(65536 - 22))
    backed = tmp_path / "backed.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(secret), "-F", "raw",
                    str(backed), "64K"], check=True)  # fmt: skip
    flat = (
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n"
        'createType="monolithicFlat"\n'
        f'RW 128 FLAT "{secret}" 0\n'
        'ddb.virtualHWVersion = "4"\n'
    )
    for data, disk_format, reason in (
        (backed.read_bytes(), "qcow2", f"it has a backing file ({secret})"),
        (flat.encode(), "vmdk", f"it has an extent in another file ({secret})"),
    ):
        image = await image_with(site, data, disk_format)
        r = await post(site, as_(site), "volumes", {"volume": {"size": 1, "imageRef": image["id"]}})
        fault(r, 400, f"Image {image['id']} cannot be read as {disk_format}: {reason}")
    assert (await get(site, as_(site), "volumes")).json()["volumes"] == []
    volumes = Path(site.settings.data_dir) / "volumes"
    assert not [f for f in volumes.rglob("*") if f.is_file() and b"private key" in f.read_bytes()]


async def test_list_filters_sorts_and_pages(site) -> None:
    h = as_(site)
    made = [
        await volume(site, h, size, name=f"v{size}", metadata={"even": str(size % 2 == 0)})
        for size in (1, 2, 3, 4)
    ]
    await volume(site, as_(site, project="beta"), 1, name="theirs")
    summary = (await get(site, h, "volumes")).json()["volumes"]
    assert [v["name"] for v in summary] == ["v4", "v3", "v2", "v1"]  # newest first
    assert set(summary[0]) == {"id", "name", "links"}
    detail = (await get(site, h, "volumes/detail?sort=size:asc")).json()["volumes"]
    assert [v["size"] for v in detail] == [1, 2, 3, 4] and "status" in detail[0]
    found = await get(site, h, 'volumes/detail?metadata={"even": "True"}&sort=name:asc')
    assert [v["name"] for v in found.json()["volumes"]] == ["v2", "v4"]
    assert [v["name"] for v in (await get(site, h, "volumes?name=v3")).json()["volumes"]] == ["v3"]
    page = (await get(site, h, "volumes?sort=name:asc&limit=2")).json()
    assert [v["name"] for v in page["volumes"]] == ["v1", "v2"]
    assert page["volumes_links"][0]["rel"] == "next"
    rest = await get(site, h, f"volumes?sort=name:asc&limit=2&marker={page['volumes'][-1]['id']}")
    assert [v["name"] for v in rest.json()["volumes"]] == ["v3", "v4"]
    skipped = await get(site, h, "volumes?sort=name:asc&limit=2&offset=1")
    assert [v["name"] for v in skipped.json()["volumes"]] == ["v2", "v3"]
    fault(await get(site, h, "volumes?offset=x"), 400, "offset param must be an integer")
    mixed = await get(site, h, "volumes/detail?sort=bootable:asc,size:desc&limit=3")
    assert [v["size"] for v in mixed.json()["volumes"]] == [4, 3, 2]
    assert made
    fault(await get(site, h, "volumes?marker=nope"), 404, "Marker nope could not be found.")
    fault(await get(site, h, "volumes?sort=colour:asc"), 400, "Invalid sort key colour.")
    fault(await get(site, h, "volumes?colour=red"), 400, "Invalid filters colour are found")
    fault(await get(site, h, "volumes?limit=-1"), 400, "limit param must be positive")
    # admins see their own project unless they ask for all of them
    assert (await get(site, admin(site), "volumes")).json()["volumes"] == []
    every = (await get(site, admin(site), "volumes?all_tenants=1")).json()["volumes"]
    assert len(every) == 5
    # a member asking for all tenants sees their own
    assert len((await get(site, h, "volumes?all_tenants=1")).json()["volumes"]) == 4


async def test_bootable_filter_reads_a_boolean_from_3_2(site) -> None:
    h = as_(site)
    vol = await volume(site, h)
    assert (
        await action(site, h, vol["id"], "os-set_bootable", {"bootable": True})
    ).status_code == 200
    await volume(site, h)
    found = await get(site, h, "volumes?bootable=false")
    assert len(found.json()["volumes"]) == 1 and found.json()["volumes"][0]["id"] != vol["id"]
    old = await get(site, as_(site, version="3.1"), "volumes?bootable=false")
    assert [v["id"] for v in old.json()["volumes"]] == [vol["id"]]  # before 3.2: any value is true


async def test_update_sets_name_description_and_metadata(site) -> None:
    h = as_(site)
    vol = await volume(site, h, metadata={"a": "1"})
    r = await put(
        site, h, f"volumes/{vol['id']}", {"volume": {"name": "new", "metadata": {"b": "2"}}}
    )
    assert r.status_code == 200, r.text
    seen = r.json()["volume"]
    assert (seen["name"], seen["metadata"]) == ("new", {"b": "2"})
    fault(
        await put(site, h, f"volumes/{vol['id']}", {"volume": {"size": 3}}),
        400,
        "Additional properties are not allowed ('size' was unexpected)",
    )
    fault(
        await put(site, h, f"volumes/{vol['id']}", {"volume": {}}),
        400,
        "does not have enough properties",
    )
    fault(
        await put(site, as_(site, "reader"), f"volumes/{vol['id']}", {"volume": {"name": "x"}}), 403
    )


async def test_delete_removes_the_record_and_its_file(site) -> None:
    h = as_(site)
    vol = await volume(site, h)
    path = data_file(site, vol["id"])
    assert path.exists()
    assert (await delete(site, h, f"volumes/{vol['id']}")).status_code == 202
    fault(await get(site, h, f"volumes/{vol['id']}"), 404)
    assert not path.exists()
    fault(
        await delete(site, h, f"volumes/{vol['id']}"),
        404,
        f"Volume {vol['id']} could not be found.",
    )


async def test_delete_is_refused_with_snapshots_unless_cascade(site) -> None:
    h = as_(site)
    vol = await volume(site, h)
    snap = await snapshot(site, h, vol["id"])
    fault(
        await delete(site, h, f"volumes/{vol['id']}"),
        400,
        "Invalid volume: Volume status must be available or error or error_restoring or "
        "error_extending or error_managing and must not be migrating, attached, belong to "
        "a group, have snapshots",
    )
    assert (await delete(site, h, f"volumes/{vol['id']}?cascade=true")).status_code == 202
    fault(await get(site, h, f"snapshots/{snap['id']}"), 404)
    snap_file = site.app.state.ctx.settings.data_dir / "volumes" / "snapshots" / f"{snap['id']}.raw"
    assert not snap_file.exists()


async def test_delete_is_refused_while_attached(site) -> None:
    h = as_(site)
    vol = await volume(site, h)
    assert (
        await action(
            site, h, vol["id"], "os-attach", {"instance_uuid": "0" * 32, "mountpoint": "/dev/vdb"}
        )
    ).status_code == 202
    fault(await delete(site, h, f"volumes/{vol['id']}"), 400, "must not be migrating, attached")
    fault(await delete(site, admin(site), f"volumes/{vol['id']}?force=true"), 400, "attached")
    assert (await get(site, h, f"volumes/{vol['id']}")).json()["volume"]["status"] == "in-use"


async def test_quota_refuses_the_volume_that_does_not_fit(site) -> None:
    h = as_(site)
    pid = project_id("alpha")
    r = await put(
        site, admin(site), f"os-quota-sets/{pid}", {"quota_set": {"volumes": 1, "gigabytes": 5}}
    )
    assert r.status_code == 200, r.text
    await volume(site, h, 2)
    r = await post(site, h, "volumes", {"volume": {"size": 1}})
    fault(r, 413, "Maximum number of volumes allowed (1) exceeded for quota 'volumes'.")
    assert r.headers["Retry-After"] == "0"
    await put(site, admin(site), f"os-quota-sets/{pid}", {"quota_set": {"volumes": 10}})
    fault(
        await post(site, h, "volumes", {"volume": {"size": 4}}),
        413,
        "Requested volume or snapshot exceeds allowed gigabytes quota. Requested 4G, quota "
        "is 5G and 2G has been consumed.",
    )
    assert len((await get(site, h, "volumes")).json()["volumes"]) == 1
    await put(site, admin(site), f"os-quota-sets/{pid}", {"quota_set": {"per_volume_gigabytes": 2}})
    fault(
        await post(site, h, "volumes", {"volume": {"size": 3}}),
        413,
        "Requested volume size 3G is larger than maximum allowed limit 2G.",
    )


async def test_the_file_is_fsynced_before_the_answer(site, monkeypatch) -> None:
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    await volume(site, as_(site))
    assert len(synced) >= 2  # the file and its directory


async def test_a_failed_write_leaves_the_volume_in_error_and_says_why(site, monkeypatch) -> None:
    backend = site.app.state.ctx.slots.require(VolumeState).backend

    async def full(*, volume_id: str, size_gb: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(backend, "create", full)
    r = await post(site, as_(site), "volumes", {"volume": {"size": 1, "name": "unlucky"}})
    fault(r, 400, "the volume's data could not be written: [Errno 28] No space left on device")
    (vol,) = (await get(site, as_(site), "volumes/detail")).json()["volumes"]
    assert (vol["name"], vol["status"]) == ("unlucky", "error")
    assert (await delete(site, as_(site), f"volumes/{vol['id']}")).status_code == 202
