"""A relocation's disk chunks in flight (``relocation_out.IN_FLIGHT``): Berlin sends the
next chunks before the first is answered, and Paris appends each in its turn, so a
slow disk at Paris costs no chunk sent twice. Paris's side on its own: a chunk that
arrives ahead of the file's end waits for those before it, and is a 409 saying where
the file ends if they do not come; one that starts before the end is a 409 at once."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from pathlib import Path

import httpx
import pytest
from relocation_support import (
    DISK,
    NOVA,
    C,
    ChunkCounter,
    active_server,
    offer,
    relocate,
    status_is,
)

from edgefed.services.compute import relocation_in
from edgefed.services.compute.relocation_out import IN_FLIGHT
from edgefed.store.compute import Relocations
from edgefed.testkit.inprocess_fleet import admin, ctx_of, fleet
from edgefed.testkit.wait import eventually

MIB = 1 << 20
SLOW_APPEND_S = 0.2


class InFlight(ChunkCounter):
    """Counts the disk chunks sent, and the most of them in flight at once."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0
        self.most = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        chunk = request.method == "PUT" and request.url.path.endswith("/disk")
        self.now += chunk
        self.most = max(self.most, self.now)
        try:
            return await super().handle_async_request(request)
        finally:
            self.now -= chunk


async def test_chunks_in_flight_are_appended_in_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    appended: list[int] = []
    append = relocation_in._append

    def slow_append(path: Path, start: int, chunk: bytes) -> None:
        time.sleep(SLOW_APPEND_S)  # Paris's fsync takes a while: the next chunks arrive
        appended.append(start)
        append(path, start, chunk)

    monkeypatch.setattr(relocation_in, "_append", slow_append)
    transport = InFlight()
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True, transport=transport) as s:
        berlin, paris = s["Berlin"], s["Paris"]
        h, at_paris = {**admin(berlin), **NOVA}, {**admin(paris), **NOVA}
        server_id = await active_server(berlin, h)
        r = await relocate(berlin, h, server_id)
        assert r.status_code == 202, r.text

        async def done() -> bool:
            r = await berlin.client.get(f"{C}/servers/{server_id}/os-edge-relocations", headers=h)
            [record] = r.json()["relocations"]
            assert record["phase"] != "failed", record
            return bool(record["phase"] == "done")

        await eventually(done, within=60, every=0.01, what="the relocation done")
        await status_is(paris, at_paris, server_id, "ACTIVE")
        assert transport.most == min(IN_FLIGHT, 3)  # 9 MiB: three chunks of 4 MiB
        assert transport.chunks == 3  # none sent twice
        assert appended == [0, 4 * MIB, 8 * MIB]
        [arrived] = await Relocations(ctx_of(paris).store).list(direction="in")
        assert arrived.phase == "done" and arrived.done_bytes == len(DISK)


async def test_paris_takes_a_chunk_ahead_only_in_its_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(relocation_in, "AHEAD_WAIT_SECONDS", 0.3)
    disk = os.urandom(8 * MIB)
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True) as s:
        paris = s["Paris"]
        offered = await offer(paris, {**admin(paris), **NOVA}, str(uuid.uuid4()), "cold")
        named = {"disk": {"size": len(disk), "sha256": hashlib.sha256(disk).hexdigest()}}
        r = await paris.client.put(offered.path, json=named, headers=offered.grant)
        assert r.status_code == 200

        async def put(start: int) -> httpx.Response:
            return await offered.put(disk, start)

        began = time.monotonic()
        r = await put(4 * MIB)  # the chunk before it never comes
        assert r.status_code == 409 and "has 0 bytes" in r.text
        assert time.monotonic() - began >= 0.3
        assert (await put(0)).status_code == 200
        r = await put(0)  # behind the file's end: at once
        assert r.status_code == 409 and f"has {4 * MIB} bytes" in r.text
        r = await put(4 * MIB)
        assert r.status_code == 200 and r.json()["relocation"]["received"] == len(disk)
        assert relocation_in._turns == {}
