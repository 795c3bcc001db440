"""A move whose source goes silent before its commit does not hold the destination
forever: after ``relocation_offer_ttl_seconds`` without a word from Berlin, Paris
aborts it (its partial disk goes, the server may be offered again), and Berlin, back,
learns it at its next step, undoes the move and runs the guest again."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from relocation_support import (
    NOVA,
    C,
    ChunkCounter,
    active_server,
    outgoing_failed,
    relocate,
    stall,
    status_is,
)

from edgefed.services.compute.relocation_in import expire_offers
from edgefed.services.compute.relocation_out import Relocator
from edgefed.services.compute.state import ComputeState
from edgefed.store.compute import Relocations
from edgefed.store.schema import utcnow
from edgefed.testkit.inprocess_fleet import admin, ctx_of, fleet
from edgefed.testkit.wait import eventually


async def test_paris_drops_a_move_berlin_stopped_following_up(tmp_path: Path) -> None:
    transport = ChunkCounter()
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True, transport=transport) as s:
        berlin, paris = s["Berlin"], s["Paris"]
        h = {**admin(berlin), **NOVA}
        server_id = await active_server(berlin, h)
        ctx = ctx_of(berlin)
        relocator = ctx.slots.require(Relocator)
        stalled = stall(relocator)  # the link is down: Berlin stops meanwhile, and stays away
        transport.cut_after = 1
        r = await relocate(berlin, h, server_id)
        assert r.status_code == 202, r.text
        await asyncio.wait_for(stalled.wait(), 30)
        await relocator.stop()

        # Paris, an hour on: nothing expires a minute early, then the move is dropped.
        paris_state = ctx_of(paris).slots.require(ComputeState)
        ttl = paris.settings.relocation_offer_ttl_seconds
        soon = utcnow() + dt.timedelta(seconds=ttl - 60)
        assert await expire_offers(paris_state, now=soon) == 0
        later = utcnow() + dt.timedelta(seconds=ttl + 1)
        assert await expire_offers(paris_state, now=later) == 1
        [dropped] = await Relocations(ctx_of(paris).store).list(direction="in")
        assert dropped.phase == "aborted"
        assert dropped.error == f"expired: no word from Berlin for {ttl:g} s before its commit"
        assert not list((paris.settings.data_dir / "relocations").glob("*"))
        assert await expire_offers(paris_state, now=later) == 0  # once

        # Berlin back: its next step is a 409 saying why; it undoes the move.
        transport.heal()
        again = Relocator(ctx.slots.require(ComputeState))
        ctx.slots.put(again)
        assert await again.resume() == 1
        record = await outgoing_failed(berlin, "Berlin's move failed")
        assert "was aborted here: expired: no word from Berlin" in (record.error or "")
        await status_is(berlin, h, server_id, "ACTIVE")  # running at Berlin again
        r = await paris.client.get(f"{C}/servers/{server_id}", headers={**admin(paris), **NOVA})
        assert r.status_code == 404

        # The server may be offered to Paris again, and moves.
        r = await relocate(berlin, h, server_id)
        assert r.status_code == 202, r.text

        async def done() -> bool:
            records = await Relocations(ctx.store).list(direction="out")
            return records[-1].phase == "done"

        await eventually(done, within=60, every=0.01, what="the second move done")
        await again.stop()
