"""Quota sets, limits, availability zones, the metadata API and uploads to images."""

from __future__ import annotations

import shutil
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


async def test_quota_sets_defaults_usage_and_updates(site) -> None:
    pid = project_id("alpha")
    h = as_(site)
    quota = await shown(site, h, f"os-quota-sets/{pid}", "quota_set")
    assert (quota["id"], quota["volumes"], quota["gigabytes"], quota["snapshots"]) == (
        pid,
        10,
        1000,
        10,
    )
    assert quota["volumes___DEFAULT__"] == -1 and quota["per_volume_gigabytes"] == -1
    await volume(site, h, 3)
    used = await shown(site, h, f"os-quota-sets/{pid}?usage=true", "quota_set")
    assert used["volumes"] == {"limit": 10, "in_use": 1, "reserved": 0}
    assert used["gigabytes"]["in_use"] == 3 and used["gigabytes___DEFAULT__"]["in_use"] == 3
    fault(await get(site, as_(site, project="beta"), f"os-quota-sets/{pid}"), 403)
    fault(await put(site, h, f"os-quota-sets/{pid}", {"quota_set": {"volumes": 5}}), 403)
    a = admin(site)
    r = await put(site, a, f"os-quota-sets/{pid}", {"quota_set": {"volumes": 5, "snapshots": "7"}})
    assert r.status_code == 200 and (
        r.json()["quota_set"]["volumes"],
        r.json()["quota_set"]["snapshots"],
    ) == (5, 7)
    fault(
        await put(site, a, f"os-quota-sets/{pid}", {"quota_set": {"bogus": 1}}),
        400,
        "Bad key(s) in quota set: bogus",
    )
    fault(
        await put(site, a, f"os-quota-sets/{pid}", {"quota_set": {"volumes": -2}}),
        400,
        "volumes must be >= -1.",
    )
    fault(
        await put(site, a, f"os-quota-sets/{pid}", {"quota_set": {"volumes": "x"}}),
        400,
        "volumes must be an integer.",
    )
    fault(
        await put(site, a, f"os-quota-sets/{pid}", {"quota_set": {"gigabytes": 2}}),
        400,
        "Quota gigabytes limit must be equal or greater than existing resources. Current "
        "usage is 3 and the requested limit is 2.",
    )
    defaults = await shown(site, h, f"os-quota-sets/{pid}/defaults", "quota_set")
    assert defaults["volumes"] == 10
    assert (await delete(site, a, f"os-quota-sets/{pid}")).status_code == 200
    assert (await shown(site, h, f"os-quota-sets/{pid}", "quota_set"))["volumes"] == 10


async def test_limits_and_availability_zones(site) -> None:
    h = as_(site)
    vol = await volume(site, h, 2)
    await snapshot(site, h, vol["id"])
    absolute = (await get(site, h, "limits")).json()["limits"]["absolute"]
    assert (absolute["maxTotalVolumes"], absolute["totalVolumesUsed"]) == (10, 1)
    assert (absolute["totalSnapshotsUsed"], absolute["totalGigabytesUsed"]) == (1, 4)
    zones = (await get(site, h, "os-availability-zone")).json()["availabilityZoneInfo"]
    assert zones == [{"zoneName": "nova", "zoneState": {"available": True}}]


async def test_volume_and_snapshot_metadata(site) -> None:
    h = as_(site)
    vol = await volume(site, h, metadata={"a": "1"})
    vid = vol["id"]
    r = await post(site, h, f"volumes/{vid}/metadata", {"metadata": {"b": "2"}})
    assert r.status_code == 200 and r.json() == {"metadata": {"a": "1", "b": "2"}}
    assert (await get(site, h, f"volumes/{vid}/metadata/b")).json() == {"meta": {"b": "2"}}
    r = await put(site, h, f"volumes/{vid}/metadata/b", {"meta": {"b": "3"}})
    assert r.json() == {"meta": {"b": "3"}}
    fault(
        await put(site, h, f"volumes/{vid}/metadata/b", {"meta": {"c": "3"}}),
        400,
        "Request body and URI mismatch",
    )
    fault(
        await put(site, h, f"volumes/{vid}/metadata/b", {"meta": {"b": "3", "c": "3"}}),
        400,
        "Request body contains too many items",
    )
    r = await put(site, h, f"volumes/{vid}/metadata", {"metadata": {"z": "26"}})
    assert r.json() == {"metadata": {"z": "26"}}
    assert (await get(site, h, f"volumes/{vid}/metadata")).json() == {"metadata": {"z": "26"}}
    assert (await delete(site, h, f"volumes/{vid}/metadata/z")).status_code == 200
    fault(
        await delete(site, h, f"volumes/{vid}/metadata/z"),
        404,
        f"Volume {vid} has no metadata with key z.",
    )
    fault(
        await post(site, as_(site, "reader"), f"volumes/{vid}/metadata", {"metadata": {"x": "1"}}),
        403,
    )
    snap = await snapshot(site, h, vid)
    r = await post(site, h, f"snapshots/{snap['id']}/metadata", {"metadata": {"s": "1"}})
    assert r.json() == {"metadata": {"s": "1"}}
    assert (await shown(site, h, f"snapshots/{snap['id']}", "snapshot"))["metadata"] == {"s": "1"}
    fault(
        await get(site, h, f"snapshots/{snap['id']}/metadata/q"),
        404,
        f"Snapshot {snap['id']} has no metadata with key q.",
    )


async def test_upload_to_image_makes_an_active_raw_image(site, tmp_path, monkeypatch) -> None:
    h = as_(site)
    vol = await volume(site, h)
    # The volume's data as a small file: the upload reads it whole (1 GiB takes long).
    small = tmp_path / "volume.raw"
    small.write_bytes(b"bootable bytes" + bytes(4082))
    backend = site.app.state.ctx.slots.require(VolumeState).backend

    async def small_export(*, volume_id: str, disk_format: str, directory: Path) -> Path:
        return small

    monkeypatch.setattr(backend, "export_image", small_export)
    r = await action(
        site,
        h,
        vol["id"],
        "os-volume_upload_image",
        {"image_name": "from-volume", "disk_format": "raw", "container_format": "bare"},
    )
    assert r.status_code == 202, r.text
    answer = r.json()["os-volume_upload_image"]
    assert (answer["image_name"], answer["disk_format"], answer["visibility"]) == (
        "from-volume",
        "raw",
        "private",
    )
    assert answer["volume_type"]["name"] == "__DEFAULT__"
    image = (await site.client.get(f"/image/v2/images/{answer['image_id']}", headers=h)).json()
    assert (image["status"], image["size"], image["name"]) == ("active", 4096, "from-volume")
    assert (await shown(site, h, f"volumes/{vol['id']}", "volume"))["status"] == "available"
    fault(
        await action(
            site,
            h,
            vol["id"],
            "os-volume_upload_image",
            {"image_name": "q", "disk_format": "iso"},
        ),
        400,
        "Invalid disk-format 'iso' is specified. Allowed disk-formats are raw, qcow2, vmdk",
    )
    fault(
        await action(site, h, vol["id"], "os-volume_upload_image", {}),
        400,
        "'image_name' is a required property",
    )


@pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img is not installed")
async def test_upload_to_a_qcow2_image_converts_the_volume(site) -> None:
    h = as_(site)
    vol = await volume(site, h)
    with open(site.app.state.ctx.settings.data_dir / "volumes" / f"{vol['id']}.raw", "r+b") as f:
        f.write(b"boot sector")
    r = await action(
        site,
        h,
        vol["id"],
        "os-volume_upload_image",
        {"image_name": "small", "disk_format": "qcow2"},
    )
    assert r.status_code == 202, r.text
    image_id = r.json()["os-volume_upload_image"]["image_id"]
    image = (await site.client.get(f"/image/v2/images/{image_id}", headers=h)).json()
    assert (image["status"], image["disk_format"]) == ("active", "qcow2")
    assert image["size"] < 1 << 20  # the empty rest of the volume costs nothing in qcow2
    data = await site.client.get(f"/image/v2/images/{image_id}/file", headers=h)
    assert data.content[:4] == b"QFI\xfb"
    # a volume made of that image holds the bytes again
    again = await volume(site, h, 1, imageRef=image_id)
    path = site.app.state.ctx.settings.data_dir / "volumes" / f"{again['id']}.raw"
    with open(path, "rb") as f:
        assert f.read(11) == b"boot sector"
    assert not list((site.app.state.ctx.settings.data_dir / "volumes" / "exports").iterdir())
