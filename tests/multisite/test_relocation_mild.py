"""A server relocated mild from Berlin to Paris, sites in this process on the fake
driver: its disk is frozen and sent while the guest keeps running at Berlin (MIGRATING,
power state Running), then the guest is stopped and only what it wrote meanwhile is
sent, the move's second file, which Paris joins to the disk before it creates the
server. A cut in either transfer resumes where Paris's bytes end, a runner stopped in
the second is taken up from its journal, a link down during the first leaves the guest
running at Berlin, and what Paris or Berlin refused before still is."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

import httpx
from relocation_support import (
    DISK,
    NOVA,
    C,
    ChunkCounter,
    active_server,
    hours_pass,
    moved,
    offer,
    outgoing_failed,
    relocate,
    stall,
    status_is,
)

from edgefed.drivers.base import PowerState
from edgefed.drivers.fake import FakeDriver
from edgefed.services.compute.relocation_out import Relocator
from edgefed.services.compute.state import ComputeState
from edgefed.store.compute import Relocations
from edgefed.store.image import ImageRepository, blob_path
from edgefed.testkit.inprocess import InProcessSite
from edgefed.testkit.inprocess_fleet import admin, ctx_of, fleet

MIB = 1 << 20
WRITTEN = bytes(range(256)) * (5 << 12)  # 5 MiB the guest writes while its disk goes
AT = 8 << 20  # where: the changes are the disk from there on, 5 MiB: two chunks
ENDED = ("failed", "aborted")  # a mild move's journal in either ends the test


def driver_of(site: InProcessSite) -> FakeDriver:
    driver = ctx_of(site).slots.require(ComputeState).driver
    assert isinstance(driver, FakeDriver)
    return driver


def after_writes() -> bytes:
    disk = bytearray(DISK)
    disk[AT : AT + len(WRITTEN)] = WRITTEN
    return bytes(disk)


class Observer(ChunkCounter):
    """The links, noting for each disk chunk Berlin's journal phase and whether its
    guest runs; after the first chunk, the guest writes ``WRITTEN``. ``cuts``: after
    how many chunks the link to Paris is cut (once each, healed by the test)."""

    def __init__(self) -> None:
        super().__init__()
        self.berlin: InProcessSite | None = None
        self.server_id = ""
        self.seen: list[tuple[str, PowerState]] = []
        self.cuts: list[int] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PUT" and request.url.path.endswith("/disk"):
            assert self.berlin is not None
            if self.cuts and self.chunks >= self.cuts[0] and request.url.host not in self.cut:
                self.cuts.pop(0)
                self.cut.add(request.url.host)
            if request.url.host not in self.cut:
                [journal] = await Relocations(ctx_of(self.berlin).store).list(direction="out")
                power = driver_of(self.berlin).power_state(self.server_id)
                self.seen.append((journal.phase, power))
                if len(self.seen) == 1:
                    driver_of(self.berlin).write(self.server_id, WRITTEN, at=AT)
        return await super().handle_async_request(request)


async def arrived_disk(paris: InProcessSite, h: dict[str, str], server_id: str) -> bytes:
    await status_is(paris, h, server_id, "ACTIVE")
    shown = (await paris.client.get(f"{C}/servers/{server_id}", headers=h)).json()
    image = await ImageRepository(ctx_of(paris).store).get(shown["server"]["image"]["id"])
    assert image is not None and image.os_hidden
    return blob_path(paris.settings.data_dir, image).read_bytes()


async def test_the_disk_goes_while_the_guest_runs_then_what_it_wrote(tmp_path: Path) -> None:
    transport = Observer()
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True, transport=transport) as s:
        berlin, paris = s["Berlin"], s["Paris"]
        h, at_paris = {**admin(berlin), **NOVA}, {**admin(paris), **NOVA}
        server_id = await active_server(berlin, h)
        transport.berlin, transport.server_id = berlin, server_id

        r = await relocate(berlin, h, server_id, mode="mild")
        assert r.status_code == 202, r.text
        assert (r.json()["relocation"]["mode"], r.json()["relocation"]["phase"]) == (
            "mild", "snapshotting")  # fmt: skip
        shown = (await berlin.client.get(f"{C}/servers/{server_id}", headers=h)).json()
        assert shown["server"]["status"] == "MIGRATING"
        record = await moved(berlin, h, server_id, stop=ENDED)

        # The disk's three chunks while the guest ran, the changes' two once stopped.
        running, stopped = PowerState.RUNNING, PowerState.SHUTDOWN
        assert transport.seen == [("sending-base", running)] * 3 + [
            ("sending-delta", stopped)] * 2  # fmt: skip
        assert record["bytes_done"] == record["bytes_total"] > len(DISK)
        data = await arrived_disk(paris, at_paris, server_id)
        assert hashlib.sha256(data).digest() == hashlib.sha256(after_writes()).digest()
        assert driver_of(paris).power_state(server_id) == PowerState.RUNNING
        assert not list((berlin.settings.data_dir / "relocations").glob("*"))
        assert not list((paris.settings.data_dir / "relocations").glob("*"))
        gone = await berlin.client.get(f"{C}/servers/{server_id}", headers=h)
        assert gone.status_code == 301


async def test_a_cut_in_either_file_resumes_where_paris_bytes_end(tmp_path: Path) -> None:
    transport = Observer()
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True, transport=transport) as s:
        berlin, paris = s["Berlin"], s["Paris"]
        h, at_paris = {**admin(berlin), **NOVA}, {**admin(paris), **NOVA}
        server_id = await active_server(berlin, h)
        transport.berlin, transport.server_id = berlin, server_id
        relocator = ctx_of(berlin).slots.require(Relocator)
        errors: list[str] = []

        async def heal_on_retry(seconds: float) -> None:
            # The runner's waits: a retry after a cut (its error in the journal), or the
            # "starting" phase polling for Paris's server (no error), which a loaded
            # machine makes more than once.
            [journal] = await Relocations(ctx_of(berlin).store).list(direction="out")
            if journal.error is not None:
                errors.append(f"{journal.phase}: {journal.error}")
            transport.cut.clear()
            await asyncio.sleep(0)

        relocator.sleep = heal_on_retry
        transport.cuts = [1, 4]  # one chunk of each file reaches Paris, then the link goes
        r = await relocate(berlin, h, server_id, mode="mild")
        assert r.status_code == 202, r.text
        await moved(berlin, h, server_id, stop=ENDED)
        assert [e.split(":")[0] for e in errors] == ["sending-base", "sending-delta"], errors
        assert all("(retrying)" in e for e in errors)
        assert transport.chunks == 5  # nothing sent twice
        data = await arrived_disk(paris, at_paris, server_id)
        assert hashlib.sha256(data).digest() == hashlib.sha256(after_writes()).digest()


async def test_a_runner_stopped_while_the_changes_go_is_taken_up(tmp_path: Path) -> None:
    transport = Observer()
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True, transport=transport) as s:
        berlin, paris = s["Berlin"], s["Paris"]
        h, at_paris = {**admin(berlin), **NOVA}, {**admin(paris), **NOVA}
        server_id = await active_server(berlin, h)
        transport.berlin, transport.server_id = berlin, server_id
        ctx = ctx_of(berlin)
        relocator = ctx.slots.require(Relocator)
        stalled = stall(relocator)  # the link is down: the site stops meanwhile
        transport.cuts = [4]
        r = await relocate(berlin, h, server_id, mode="mild")
        assert r.status_code == 202, r.text
        await asyncio.wait_for(stalled.wait(), 30)
        await relocator.stop()
        [journal] = await Relocations(ctx.store).list(direction="out")
        assert journal.phase == "sending-delta"
        assert journal.done_bytes == len(DISK) + (4 << 20)
        assert driver_of(berlin).power_state(server_id) == PowerState.SHUTDOWN

        transport.cut.clear()
        again = Relocator(ctx.slots.require(ComputeState))
        ctx.slots.put(again)
        assert await again.resume() == 1
        await moved(berlin, h, server_id, stop=ENDED)
        assert transport.chunks == 5  # the restart sent only what Paris lacked
        data = await arrived_disk(paris, at_paris, server_id)
        assert hashlib.sha256(data).digest() == hashlib.sha256(after_writes()).digest()
        await again.stop()


async def test_a_link_down_while_the_disk_goes_leaves_the_guest_running(tmp_path: Path) -> None:
    transport = Observer()
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True, transport=transport) as s:
        berlin, paris = s["Berlin"], s["Paris"]
        h = {**admin(berlin), **NOVA}
        server_id = await active_server(berlin, h)
        transport.berlin, transport.server_id = berlin, server_id
        hours_pass(ctx_of(berlin).slots.require(Relocator))
        transport.cuts = [1]
        r = await relocate(berlin, h, server_id, mode="mild")
        assert r.status_code == 202, r.text
        await outgoing_failed(berlin)
        await status_is(berlin, h, server_id, "ACTIVE")
        assert transport.seen == [("sending-base", PowerState.RUNNING)]
        assert driver_of(berlin).power_state(server_id) == PowerState.RUNNING  # never stopped
        assert not list((berlin.settings.data_dir / "relocations").glob("*.out"))
        transport.cut.clear()
        r = await paris.client.get(f"{C}/servers/{server_id}", headers={**admin(paris), **NOVA})
        assert r.status_code == 404


async def test_a_guest_that_fails_to_start_at_paris_runs_at_berlin_again(
    tmp_path: Path,
) -> None:
    """Past the stop: Paris's spawn fails (the fake's fault injection), Berlin has Paris
    abort and starts its guest again, from its own disk with what it wrote."""
    transport = Observer()
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True, transport=transport) as s:
        berlin, paris = s["Berlin"], s["Paris"]
        h = {**admin(berlin), **NOVA}
        server_id = await active_server(berlin, h)
        transport.berlin, transport.server_id = berlin, server_id
        failing = {"server": {"name": "till-fake-spawn-failure"}}  # Paris's spawns fail
        r = await berlin.client.put(f"{C}/servers/{server_id}", json=failing, headers=h)
        assert r.status_code == 200, r.text
        r = await relocate(berlin, h, server_id, mode="mild")
        assert r.status_code == 202, r.text
        record = await outgoing_failed(berlin)
        assert "did not start at Paris" in (record.error or "")
        assert [phase for phase, _ in transport.seen][-1] == "sending-delta"  # past the stop
        await status_is(berlin, h, server_id, "ACTIVE")
        assert driver_of(berlin).power_state(server_id) == PowerState.RUNNING
        snap = await driver_of(berlin).snapshot(server_id)  # its disk, with what it wrote
        assert snap.data is not None
        assert hashlib.sha256(snap.data).digest() == hashlib.sha256(after_writes()).digest()
        await ctx_of(paris).slots.require(ComputeState).lifecycle.idle()
        r = await paris.client.get(f"{C}/servers/{server_id}", headers={**admin(paris), **NOVA})
        assert r.status_code == 404


async def test_refusals_are_the_same_and_a_stopped_server_moves_cold(tmp_path: Path) -> None:
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True) as s:
        berlin, paris = s["Berlin"], s["Paris"]
        h, at_paris = {**admin(berlin), **NOVA}, {**admin(paris), **NOVA}
        server_id = await active_server(berlin, h)
        r = await relocate(berlin, h, server_id, "Atlantis", mode="mild")
        assert r.status_code == 400 and "Unknown site 'Atlantis'" in r.text
        r = await relocate(berlin, h, server_id, mode="hot")
        assert r.status_code == 400 and "Invalid relocation mode 'hot'" in r.text
        assert "cold or mild" in r.text
        assert await Relocations(ctx_of(berlin).store).list() == []
        assert await Relocations(ctx_of(paris).store).list() == []
        assert driver_of(berlin).power_state(server_id) == PowerState.RUNNING

        r = await berlin.client.post(f"{C}/servers/{server_id}/action", json={"os-stop": None},
                                     headers=h)  # fmt: skip
        assert r.status_code == 202, r.text
        await status_is(berlin, h, server_id, "SHUTOFF")
        r = await relocate(berlin, h, server_id, mode="mild")
        assert r.status_code == 202, r.text
        assert r.json()["relocation"]["mode"] == "cold"  # nothing runs: the disk goes whole
        record = await moved(berlin, h, server_id, stop=ENDED)
        assert record["bytes_done"] == len(DISK)
        await status_is(paris, at_paris, server_id, "SHUTOFF")


async def test_paris_takes_the_changes_only_after_a_whole_checked_disk(tmp_path: Path) -> None:
    """Paris's side alone: a disk whose chunks each match their sha256 but not the whole
    file's is taken again from 0 (409 on its last chunk); the changes are named only
    once the disk is whole and checked, and their chunks go to their own file."""
    disk, changes = os.urandom(8 * MIB), os.urandom(MIB + 5)
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True) as s:
        paris = s["Paris"]
        offered = await offer(paris, {**admin(paris), **NOVA}, str(uuid.uuid4()), "mild")
        path, grant, put = offered.path, offered.grant, offered.put

        def named(data: bytes) -> dict[str, Any]:
            return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}

        r = await paris.client.put(path, json={"disk": named(disk)}, headers=grant)
        assert r.status_code == 200 and r.json()["relocation"]["part"] == "base"
        assert (await put(disk, 0)).status_code == 200
        r = await paris.client.put(path, json={"delta": named(changes)}, headers=grant)
        assert r.status_code == 409 and "the changes come after it" in r.text
        r = await put(disk, 4 * MIB, os.urandom(4 * MIB))  # a chunk true to itself only
        assert r.status_code == 409 and "has 0 bytes" in r.text
        assert (await paris.client.get(path, headers=grant)).json()["relocation"]["received"] == 0
        for start in (0, 4 * MIB):
            assert (await put(disk, start)).status_code == 200

        r = await paris.client.put(path, json={"delta": named(changes)}, headers=grant)
        assert r.status_code == 200, r.text
        shown = r.json()["relocation"]
        assert (shown["phase"], shown["part"], shown["received"]) == ("receiving-delta", "delta", 0)
        r = await paris.client.put(path, json={"delta": named(changes)}, headers=grant)
        assert r.status_code == 200  # named again (a source that restarted): the same
        r = await put(changes, 0)  # one chunk
        assert r.status_code == 200 and r.json()["relocation"]["received"] == len(changes)
        staged = paris.settings.data_dir / "relocations"
        assert sorted(p.name.split(".", 1)[1] for p in staged.iterdir()) == ["delta.in", "in"]
        assert (await paris.client.delete(path, headers=grant)).status_code == 204
        assert list(staged.iterdir()) == []
