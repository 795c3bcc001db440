"""Block Storage through the real ``openstack`` CLI (openstacksdk's block_storage v3)
against a real ``edgefed site serve`` process."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from edgefed.testkit.fleet_process import password_token
from edgefed.testkit.process import SiteProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def image(osc, tmp_path_factory) -> str:
    disk = Path(tmp_path_factory.mktemp("img")) / "tiny.raw"
    disk.write_bytes(b"a tiny raw disk" * 4096)
    out = osc.json(
        "image",
        "create",
        "--file",
        str(disk),
        "--disk-format",
        "raw",
        "--container-format",
        "bare",
        "--public",
        "tiny",
    )
    return str(out["id"])


def test_volume_lifecycle(osc):
    vol = osc.json("volume", "create", "--size", "1", "--description", "first", "vol1")
    assert (vol["status"], vol["size"], vol["name"]) == ("available", 1, "vol1")
    assert vol["type"] == "__DEFAULT__" and vol["bootable"] is False
    listed = osc.json("volume", "list")
    assert [(v["Name"], v["Status"], v["Size"]) for v in listed] == [("vol1", "available", 1)]
    osc.run(
        "volume",
        "set",
        "--name",
        "vol1b",
        "--property",
        "tier=gold",
        "--property",
        "app=shop",
        "--description",
        "renamed",
        "vol1",
    )
    shown = osc.json("volume", "show", "vol1b")
    assert shown["description"] == "renamed"
    assert shown["properties"] == {"tier": "gold", "app": "shop"}
    osc.run("volume", "unset", "--property", "tier", "vol1b")
    assert osc.json("volume", "show", "vol1b")["properties"] == {"app": "shop"}
    osc.run("volume", "set", "--size", "2", "--bootable", "vol1b")
    shown = osc.json("volume", "show", "vol1b")
    assert (shown["size"], shown["bootable"]) == (2, True)
    osc.run("volume", "delete", "vol1b")
    assert osc.json("volume", "list") == []


def test_snapshots(osc):
    osc.json("volume", "create", "--size", "1", "snapped")
    snap = osc.json("volume", "snapshot", "create", "--volume", "snapped", "snap1")
    assert snap["status"] == "available" and snap["size"] == 1
    listed = osc.json("volume", "snapshot", "list")
    assert [(s["Name"], s["Status"]) for s in listed] == [("snap1", "available")]
    # a volume with a snapshot is not deleted; the refusal says why
    refused = osc.run("volume", "delete", "snapped", check=False)
    assert refused.returncode != 0 and "have snapshots" in refused.stderr
    restored = osc.json("volume", "create", "--snapshot", "snap1", "restored")
    assert restored["size"] == 1 and restored["snapshot_id"] == snap["id"]
    osc.run("volume", "snapshot", "delete", "snap1")
    assert osc.json("volume", "snapshot", "list") == []
    osc.run("volume", "delete", "snapped", "restored")


def test_volume_types_with_properties(osc):
    made = osc.json(
        "volume", "type", "create", "--property", "tier=gold", "--description", "fast disks", "gold"
    )
    assert made["name"] == "gold"
    shown = osc.json("volume", "type", "show", "gold")
    assert shown["properties"] == {"tier": "gold"} and shown["is_public"] is True
    names = {t["Name"] for t in osc.json("volume", "type", "list")}
    assert {"__DEFAULT__", "gold"} <= names
    vol = osc.json("volume", "create", "--size", "1", "--type", "gold", "golden")
    assert vol["type"] == "gold"
    unknown = osc.run("volume", "create", "--size", "1", "--type", "silver", "x", check=False)
    assert unknown.returncode != 0 and "silver" in unknown.stderr
    osc.run("volume", "delete", "golden")
    osc.run("volume", "type", "delete", "gold")


def test_volume_from_an_image(osc, image, site_process):
    vol = osc.json("volume", "create", "--image", image, "--size", "1", "from-image")
    assert vol["bootable"] is True and vol["status"] == "available"
    # the image's bytes are the volume's first bytes, fsync'd before the answer
    with open(Path(site_process.data_dir) / "volumes" / f"{vol['id']}.raw", "rb") as f:
        assert f.read(15 * 4096) == b"a tiny raw disk" * 4096
    shown = osc.json("volume", "show", "from-image")
    assert shown["volume_image_metadata"]["image_id"] == image
    # and back: the volume as a qcow2 image, converted by qemu-img
    osc.run("image", "create", "--volume", "from-image", "--disk-format", "qcow2", "back")
    back = osc.json("image", "show", "back")
    assert (back["status"], back["disk_format"]) == ("active", "qcow2")
    assert osc.json("volume", "show", "from-image")["status"] == "available"
    osc.run("volume", "delete", "from-image")


def test_quota_show_includes_the_volume_quotas(osc):
    shown = osc.json("quota", "show")
    limits = {r["Resource"]: r["Limit"] for r in shown}
    assert (limits["volumes"], limits["gigabytes"], limits["snapshots"]) == (10, 1000, 10)
    osc.run("quota", "set", "--volumes", "1", "admin")
    osc.json("volume", "create", "--size", "1", "only")
    refused = osc.run("volume", "create", "--size", "1", "second", check=False)
    assert refused.returncode != 0
    assert "Maximum number of volumes allowed (1) exceeded" in refused.stderr
    osc.run("volume", "delete", "only")
    osc.run("quota", "set", "--volumes", "10", "admin")


def test_acknowledged_volumes_survive_kill_9(tmp_path: Path, database_url: str | None) -> None:
    """Volumes answered 202 are there after SIGKILL and a restart, with their data
    files (allocated and fsync'd before the answer) and a truthful status."""
    site = SiteProcess(name="Paris", data_dir=tmp_path / "paris", database_url=database_url)
    site.start()
    try:
        headers = {"X-Auth-Token": password_token(site.url, site.password)}
        with httpx.Client(base_url=site.url, headers=headers, timeout=30) as http:
            project = http.get("/identity/v3/auth/projects").json()["projects"][0]["id"]
            quota = {"quota_set": {"volumes": -1, "gigabytes": -1}}
            assert http.put(f"/volume/v3/os-quota-sets/{project}", json=quota).status_code == 200
        acked: list[str] = []
        stop = threading.Event()
        enough = threading.Event()

        def write(worker: int) -> None:
            with httpx.Client(base_url=site.url, headers=headers, timeout=10) as http:
                for i in range(10_000):
                    if stop.is_set():
                        return
                    body = {"volume": {"size": 1, "name": f"v{worker}-{i}"}}
                    try:
                        r = http.post("/volume/v3/volumes", json=body)
                    except httpx.HTTPError:
                        return
                    if r.status_code == 202:
                        acked.append(r.json()["volume"]["id"])
                    if len(acked) >= 20:
                        enough.set()

        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [pool.submit(write, w) for w in range(2)]
            assert enough.wait(120), "writers made no progress"
            site.kill()
            stop.set()
            for f in futures:
                f.result(timeout=60)
        site.start()
        headers = {"X-Auth-Token": password_token(site.url, site.password)}
        with httpx.Client(base_url=site.url, headers=headers, timeout=30) as http:
            listed = http.get("/volume/v3/volumes/detail").json()["volumes"]
        status = {v["id"]: v["status"] for v in listed}
        missing = [v for v in acked if v not in status]
        assert not missing, f"{len(missing)} acknowledged volumes lost: {missing[:5]}"
        assert all(status[v] == "available" for v in acked)
        for volume_id in acked:
            assert (site.data_dir / "volumes" / f"{volume_id}.raw").stat().st_size == 1 << 30
        # one cut mid-create at most, and it says so
        assert all(s in ("available", "creating") for s in status.values())
    finally:
        site.stop()
