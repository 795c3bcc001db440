"""A server relocated from Berlin to Paris with its volumes (``"volumes": "move"``),
sites in this process on the fake driver: each attached volume's data goes in the
disk's transfer after the disk (resumed where Paris's bytes end after a cut), is made
again at Paris with the same id, name, size, type and metadata, plugged into the server
at the same device, and is deleted at Berlin only once Paris's server is ACTIVE. Paris
refuses, before anything stops, a volume type it lacks or a volume quota it would pass;
a move undone before its commit leaves the volume attached at Berlin."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from relocation_support import (
    NOVA,
    C,
    ChunkCounter,
    active_server,
    hours_pass,
    journal,
    relocate,
    status_is,
)

from edgefed.drivers.fake import FakeDriver
from edgefed.services.compute.relocation_out import Relocator
from edgefed.services.compute.relocation_parts import progress
from edgefed.services.compute.state import ComputeState
from edgefed.services.volume.backend import FileVolumeBackend
from edgefed.services.volume.state import VolumeState
from edgefed.store.compute import Relocations
from edgefed.testkit.inprocess import InProcessSite
from edgefed.testkit.inprocess_fleet import admin, ctx_of, fleet
from edgefed.testkit.wait import eventually

pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="needs qemu-img")

CINDER = {"OpenStack-API-Version": "volume 3.71"}
DATA = os.urandom(9 << 20)  # written 1 MiB into the 1 GiB volume: the rest is a hole
MOVE = {"site": "Paris", "volumes": "move"}


def backend(site: InProcessSite) -> FileVolumeBackend:
    found = ctx_of(site).slots.require(VolumeState).backend
    assert isinstance(found, FileVolumeBackend)
    return found


def volume_sha(site: InProcessSite, volume_id: str) -> str:
    """The sha256 of the volume's size and of each MiB that is not zeros, whatever is
    a hole in the file (a whole 1 GiB read takes seconds)."""
    h = hashlib.sha256()
    with open(backend(site).volume_path(volume_id), "rb") as f:
        size = os.fstat(f.fileno()).st_size
        h.update(str(size).encode())
        block, offset = 1 << 20, 0
        while offset < size:
            try:
                start = os.lseek(f.fileno(), offset, os.SEEK_DATA)
            except OSError:  # no data past offset
                break
            end = os.lseek(f.fileno(), start, os.SEEK_HOLE)
            offset = start // block * block
            f.seek(offset)
            while offset < end:
                data = f.read(block)
                if data.strip(b"\0"):
                    h.update(offset.to_bytes(8, "big") + data)
                offset += block
    return h.hexdigest()


async def attached_volume(berlin: InProcessSite, server_id: str, **extra: Any) -> tuple[str, str]:
    """A volume with data, attached to the server: (its id, its device)."""
    cinder = {**admin(berlin), **CINDER}
    body = {"volume": {"size": 1, "name": "ledger", "metadata": {"till": "3"}, **extra}}
    r = await berlin.client.post("/volume/v3/volumes", json=body, headers=cinder)
    assert r.status_code == 202, r.text
    volume_id = str(r.json()["volume"]["id"])
    with open(backend(berlin).volume_path(volume_id), "rb+") as f:
        f.seek(1 << 20)
        f.write(DATA)
    r = await berlin.client.post(f"{C}/servers/{server_id}/os-volume_attachments",
                                 json={"volumeAttachment": {"volumeId": volume_id}},
                                 headers={**admin(berlin), **NOVA})  # fmt: skip
    assert r.status_code == 200, r.text
    return volume_id, str(r.json()["volumeAttachment"]["device"])


async def test_a_volume_moves_with_its_server_and_leaves_berlin_once_paris_runs_it(
    tmp_path: Path,
) -> None:
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True) as s:
        berlin, paris = s["Berlin"], s["Paris"]
        h, at_paris = {**admin(berlin), **NOVA}, {**admin(paris), **NOVA}
        server_id = await active_server(berlin, h)
        volume_id, device = await attached_volume(berlin, server_id)
        sha = volume_sha(berlin, volume_id)

        # Berlin deletes its copy only once Paris's server is ACTIVE.
        catalog = ctx_of(berlin).volumes
        assert catalog is not None
        paris_servers = ctx_of(paris).slots.require(ComputeState).servers
        seen: list[str | None] = []
        delete = catalog.delete

        async def delete_seen(*, volume_id: str) -> None:
            server = await paris_servers.get(server_id)
            seen.append(server.vm_state if server is not None else None)
            await delete(volume_id=volume_id)

        catalog.delete = delete_seen  # type: ignore[method-assign]
        r = await relocate(berlin, h, server_id, **MOVE)
        assert r.status_code == 202, r.text
        record = await journal(berlin, h, server_id, "done")
        assert seen == ["active"]
        [moved] = record["volumes"]
        assert moved["id"] == volume_id and moved["phase"] == "moved"
        assert 0 < moved["bytes_done"] == moved["bytes_total"] < len(DATA) + (1 << 20)

        await status_is(paris, at_paris, server_id, "ACTIVE")
        cinder_paris = {**admin(paris), **CINDER}
        shown = (await paris.client.get(f"/volume/v3/volumes/{volume_id}",
                                        headers=cinder_paris)).json()["volume"]  # fmt: skip
        assert (shown["name"], shown["size"], shown["metadata"]) == ("ledger", 1, {"till": "3"})
        assert shown["status"] == "in-use" and shown["volume_type"] == "__DEFAULT__"
        [where] = shown["attachments"]
        assert where["server_id"] == server_id and where["device"] == device
        driver = ctx_of(paris).slots.require(ComputeState).driver
        assert isinstance(driver, FakeDriver)
        assert volume_id in driver.instances[server_id].volumes
        assert volume_sha(paris, volume_id) == sha

        r = await berlin.client.get(f"/volume/v3/volumes/{volume_id}",
                                    headers={**admin(berlin), **CINDER})  # fmt: skip
        assert r.status_code == 404
        assert not backend(berlin).volume_path(volume_id).exists()
        assert not list((paris.settings.data_dir / "relocations").glob("*"))
        assert not list((berlin.settings.data_dir / "relocations").glob("*"))

        # The move is done: the volume is the server's as it was (kept at its delete).
        r = await paris.client.delete(f"{C}/servers/{server_id}", headers=at_paris)
        assert r.status_code == 204, r.text

        async def available() -> bool:
            r = await paris.client.get(f"/volume/v3/volumes/{volume_id}", headers=cinder_paris)
            return bool(r.json()["volume"]["status"] == "available")

        await eventually(available, within=30, every=0.01, what="the volume kept")


async def test_a_cut_mid_volume_resumes_where_paris_bytes_end(tmp_path: Path) -> None:
    transport = ChunkCounter()
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True, transport=transport) as s:
        berlin, paris = s["Berlin"], s["Paris"]
        h, at_paris = {**admin(berlin), **NOVA}, {**admin(paris), **NOVA}
        server_id = await active_server(berlin, h)
        volume_id, _ = await attached_volume(berlin, server_id)
        sha = volume_sha(berlin, volume_id)
        relocator = ctx_of(berlin).slots.require(Relocator)
        during: list[dict[str, Any]] = []

        async def heal_on_retry(seconds: float) -> None:
            [record] = await Relocations(ctx_of(berlin).store).list(direction="out")
            during.extend(progress(record))
            transport.heal()
            await asyncio.sleep(0)

        relocator.sleep = heal_on_retry
        # The disk is 9 MiB, the volume's qcow2 a little over 9 MiB, in chunks of 4 MiB:
        # the fourth chunk (12-16 MiB) is in the middle of the volume.
        transport.cut_after = 3
        r = await relocate(berlin, h, server_id, **MOVE)
        assert r.status_code == 202, r.text
        record = await journal(berlin, h, server_id, "done")
        assert during and during[0]["phase"] == "sending"
        assert 0 < during[0]["bytes_done"] < during[0]["bytes_total"]
        assert transport.chunks == 5  # nothing sent twice: ~18.1 MiB in five chunks
        assert record["bytes_done"] == record["bytes_total"]
        await status_is(paris, at_paris, server_id, "ACTIVE")
        assert volume_sha(paris, volume_id) == sha


async def test_a_volume_type_paris_lacks_its_quota_or_snapshots_are_refused(tmp_path: Path) -> None:
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True) as s:
        berlin, paris = s["Berlin"], s["Paris"]
        h = {**admin(berlin), **NOVA}
        r = await berlin.client.post("/volume/v3/types", json={"volume_type": {"name": "gold"}},
                                     headers={**admin(berlin), **CINDER})  # fmt: skip
        assert r.status_code == 200, r.text
        server_id = await active_server(berlin, h)
        volume_id, _ = await attached_volume(berlin, server_id, volume_type="gold")
        cinder = {**admin(berlin), **CINDER}
        snapshot = {"snapshot": {"volume_id": volume_id, "force": True}}
        r = await berlin.client.post("/volume/v3/snapshots", json=snapshot, headers=cinder)
        assert r.status_code == 202, r.text
        snapshot_id = r.json()["snapshot"]["id"]
        # Berlin's own refusal: they would stay here.
        r = await relocate(berlin, h, server_id, **MOVE)
        assert r.status_code == 409 and "has snapshots, which do not move" in r.text, r.text
        await nothing_happened(berlin, paris, server_id, volume_id)
        r = await berlin.client.delete(f"/volume/v3/snapshots/{snapshot_id}", headers=cinder)
        assert r.status_code == 202, r.text

        r = await relocate(berlin, h, server_id, **MOVE)
        assert r.status_code == 400, r.text
        assert "Paris has no volume type named 'gold'" in r.text
        await nothing_happened(berlin, paris, server_id, volume_id)

        r = await paris.client.post("/volume/v3/types", json={"volume_type": {"name": "gold"}},
                                    headers={**admin(paris), **CINDER})  # fmt: skip
        assert r.status_code == 200, r.text
        project = ctx_of(berlin).slots.require(ComputeState)
        server = await project.servers.get(server_id)
        assert server is not None
        r = await paris.client.put(f"/volume/v3/os-quota-sets/{server.project_id}",
                                   json={"quota_set": {"volumes": 0}},
                                   headers={**admin(paris), **CINDER})  # fmt: skip
        assert r.status_code == 200, r.text
        r = await relocate(berlin, h, server_id, **MOVE)
        assert r.status_code == 400, r.text
        assert "Maximum number of volumes allowed (0) exceeded" in r.text
        await nothing_happened(berlin, paris, server_id, volume_id)


async def nothing_happened(
    berlin: InProcessSite, paris: InProcessSite, server_id: str, volume_id: str
) -> None:
    await status_is(berlin, {**admin(berlin), **NOVA}, server_id, "ACTIVE")
    assert await Relocations(ctx_of(berlin).store).list() == []
    assert await Relocations(ctx_of(paris).store).list() == []
    await attached_at_berlin(berlin, server_id, volume_id)
    r = await paris.client.get(f"/volume/v3/volumes/{volume_id}",
                               headers={**admin(paris), **CINDER})  # fmt: skip
    assert r.status_code == 404


async def attached_at_berlin(berlin: InProcessSite, server_id: str, volume_id: str) -> None:
    r = await berlin.client.get(f"/volume/v3/volumes/{volume_id}",
                                headers={**admin(berlin), **CINDER})  # fmt: skip
    shown = r.json()["volume"]
    assert shown["status"] == "in-use", shown
    assert [a["server_id"] for a in shown["attachments"]] == [server_id]


async def test_a_move_undone_before_its_commit_leaves_the_volume_at_berlin(
    tmp_path: Path,
) -> None:
    transport = ChunkCounter()
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True, transport=transport) as s:
        berlin, paris = s["Berlin"], s["Paris"]
        h = {**admin(berlin), **NOVA}
        server_id = await active_server(berlin, h)
        volume_id, _ = await attached_volume(berlin, server_id)
        sha = volume_sha(berlin, volume_id)
        hours_pass(ctx_of(berlin).slots.require(Relocator))
        transport.cut_after = 3  # in the middle of the volume
        r = await relocate(berlin, h, server_id, **MOVE)
        assert r.status_code == 202, r.text
        record = await journal(berlin, h, server_id, "failed")
        assert "link to Paris is down" in record["error"]
        [volume] = record["volumes"]
        assert volume["phase"] == "left here"
        transport.cut.clear()

        await status_is(berlin, h, server_id, "ACTIVE")  # running here again, with it
        await attached_at_berlin(berlin, server_id, volume_id)
        driver = ctx_of(berlin).slots.require(ComputeState).driver
        assert isinstance(driver, FakeDriver)
        assert volume_id in driver.instances[server_id].volumes
        assert volume_sha(berlin, volume_id) == sha
        r = await paris.client.get(f"/volume/v3/volumes/{volume_id}",
                                   headers={**admin(paris), **CINDER})  # fmt: skip
        assert r.status_code == 404
        assert not list((berlin.settings.data_dir / "relocations").glob("*"))


async def test_a_volume_another_server_holds_too_does_not_move(tmp_path: Path) -> None:
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True) as s:
        berlin, paris = s["Berlin"], s["Paris"]
        h, cinder = {**admin(berlin), **NOVA}, {**admin(berlin), **CINDER}
        body = {"volume_type": {"name": "shared",
                                "extra_specs": {"multiattach": "<is> True"}}}  # fmt: skip
        r = await berlin.client.post("/volume/v3/types", json=body, headers=cinder)
        assert r.status_code == 200, r.text
        server_id = await active_server(berlin, h)
        other = await active_server(berlin, h)
        volume_id, _ = await attached_volume(berlin, server_id, volume_type="shared")
        r = await berlin.client.post(f"{C}/servers/{other}/os-volume_attachments",
                                     json={"volumeAttachment": {"volumeId": volume_id}},
                                     headers=h)  # fmt: skip
        assert r.status_code == 200, r.text

        r = await relocate(berlin, h, server_id, **MOVE)
        assert r.status_code == 409 and "it moves with one server only" in r.text, r.text
        await status_is(berlin, h, server_id, "ACTIVE")
        assert await Relocations(ctx_of(berlin).store).list() == []
        assert await Relocations(ctx_of(paris).store).list() == []


@pytest.mark.skipif(shutil.which("qemu-storage-daemon") is None, reason="needs qemu-storage-daemon")
async def test_a_volume_of_a_third_site_is_refused_even_to_move(tmp_path: Path) -> None:
    """A volume Berlin's server uses from Denver neither moves (it is Denver's) nor is
    attached from Paris (Denver's export is Berlin's alone): detached first."""
    async with fleet(tmp_path, ["Berlin", "Paris", "Denver"], joined=True) as s:
        berlin, paris, denver = s["Berlin"], s["Paris"], s["Denver"]
        try:
            h = {**admin(berlin), **NOVA}
            server_id = await active_server(berlin, h)
            r = await denver.client.post("/volume/v3/volumes", json={"volume": {"size": 1}},
                                         headers={**admin(denver), **CINDER})  # fmt: skip
            volume_id = r.json()["volume"]["id"]
            r = await berlin.client.post(f"{C}/servers/{server_id}/os-volume_attachments",
                                         json={"volumeAttachment": {"volumeId": volume_id}},
                                         headers={**h, "X-Scope": "{volume: Denver}"})  # fmt: skip
            assert r.status_code == 200, r.text
            for choice in ("move", "remote"):
                r = await relocate(berlin, h, server_id, volumes=choice)
                assert r.status_code == 400, r.text
                assert f"uses volume {volume_id} of site Denver: detach it" in r.text
            await status_is(berlin, h, server_id, "ACTIVE")
            assert await Relocations(ctx_of(berlin).store).list() == []
            assert await Relocations(ctx_of(paris).store).list() == []
        finally:  # exports outlive their site by design: a test removes its own
            await ctx_of(denver).slots.require(VolumeState).exports.close_all()


async def test_a_volume_paris_cannot_make_at_the_commit_undoes_the_move(tmp_path: Path) -> None:
    """Paris's volume type goes between the offer and the commit: the commit is refused
    (not a hash mismatch, so not sent again and again), the move undone."""
    transport = ChunkCounter()
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True, transport=transport) as s:
        berlin, paris = s["Berlin"], s["Paris"]
        h = {**admin(berlin), **NOVA}
        types = {}
        for site in (berlin, paris):
            r = await site.client.post("/volume/v3/types", json={"volume_type": {"name": "gold"}},
                                       headers={**admin(site), **CINDER})  # fmt: skip
            types[site.settings.name] = r.json()["volume_type"]["id"]
        server_id = await active_server(berlin, h)
        volume_id, _ = await attached_volume(berlin, server_id, volume_type="gold")
        relocator = ctx_of(berlin).slots.require(Relocator)

        async def type_goes(seconds: float) -> None:
            if transport.cut:
                r = await paris.client.delete(f"/volume/v3/types/{types['Paris']}",
                                              headers={**admin(paris), **CINDER})  # fmt: skip
                assert r.status_code == 202, r.text
            transport.heal()
            await asyncio.sleep(0)

        relocator.sleep = type_goes
        transport.cut_after = 1
        r = await relocate(berlin, h, server_id, **MOVE)
        assert r.status_code == 202, r.text
        record = await journal(berlin, h, server_id, "failed")
        assert "no volume type named 'gold'" in record["error"], record
        await status_is(berlin, h, server_id, "ACTIVE")
        await attached_at_berlin(berlin, server_id, volume_id)
        for path, version in ((f"/volume/v3/volumes/{volume_id}", CINDER),
                              (f"{C}/servers/{server_id}", NOVA)):  # fmt: skip
            r = await paris.client.get(path, headers={**admin(paris), **version})
            assert r.status_code == 404, r.text


async def test_a_volume_that_cannot_be_written_out_undoes_the_move(tmp_path: Path) -> None:
    """Its data gone from Berlin's storage: the export fails once the guest is stopped,
    and the move is undone (the guest runs again), rather than stopping there."""
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True) as s:
        berlin, paris = s["Berlin"], s["Paris"]
        h = {**admin(berlin), **NOVA}
        server_id = await active_server(berlin, h)
        volume_id, _ = await attached_volume(berlin, server_id)
        backend(berlin).volume_path(volume_id).unlink()

        r = await relocate(berlin, h, server_id, **MOVE)
        assert r.status_code == 202, r.text
        record = await journal(berlin, h, server_id, "failed")
        assert f"Volume {volume_id} cannot be written out to move" in record["error"]
        await status_is(berlin, h, server_id, "ACTIVE")
        await attached_at_berlin(berlin, server_id, volume_id)
        assert not list((berlin.settings.data_dir / "relocations").glob("*"))
        assert await Relocations(ctx_of(paris).store).list(direction="in") != []
        r = await paris.client.get(f"{C}/servers/{server_id}", headers={**admin(paris), **NOVA})
        assert r.status_code == 404


async def test_paris_refuses_volume_data_that_names_a_file_of_its_host(tmp_path: Path) -> None:
    """A compromised Berlin sends, as a volume's data, a qcow2 whose backing file is a
    file of Paris's host: Paris refuses it at the commit (qemu-img would copy that file
    into the volume), and the move is undone."""
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True) as s:
        berlin, paris = s["Berlin"], s["Paris"]
        h = {**admin(berlin), **NOVA}
        server_id = await active_server(berlin, h)
        volume_id, _ = await attached_volume(berlin, server_id)
        secret = paris.settings.data_dir / "secret"
        secret.write_bytes(b"Paris's own" * 1000)
        crafted = tmp_path / "crafted.qcow2"
        made = await asyncio.create_subprocess_exec(
            "qemu-img", "create", "-q", "-f", "qcow2", "-b", str(secret), "-F", "raw",
            str(crafted), "1G",
        )  # fmt: skip
        assert await made.wait() == 0
        catalog = ctx_of(berlin).volumes
        assert catalog is not None

        async def export_crafted(*, volume_id: str, directory: Path) -> tuple[Path, str]:
            directory.mkdir(parents=True, exist_ok=True)
            copy = directory / "crafted.qcow2"
            shutil.copyfile(crafted, copy)
            return copy, "qcow2"

        catalog.export_for_move = export_crafted  # type: ignore[method-assign]
        r = await relocate(berlin, h, server_id, **MOVE)
        assert r.status_code == 202, r.text
        record = await journal(berlin, h, server_id, "failed")
        refused = f"The data of volume {volume_id} is refused: it has a backing file"
        assert refused in record["error"]
        await status_is(berlin, h, server_id, "ACTIVE")
        await attached_at_berlin(berlin, server_id, volume_id)
        r = await paris.client.get(f"/volume/v3/volumes/{volume_id}",
                                   headers={**admin(paris), **CINDER})  # fmt: skip
        assert r.status_code == 404
        assert not backend(paris).volume_path(volume_id).exists()
