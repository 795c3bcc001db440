"""What Berlin's journal says of a move while the disk goes (sites in this process, fake
driver): once the link answers again after a cut, the move's error ("… (retrying)") is
gone, while the bytes go on (``openstack server relocation list`` shows it; the e2e
on real guests, tests/e2e/test_relocation_guests.py, watched it stay)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from relocation_support import DISK, NOVA, C, ChunkCounter, active_server

from edgefed.services.compute.relocation_out import Relocator
from edgefed.testkit.inprocess_fleet import admin, ctx_of, fleet
from edgefed.testkit.wait import eventually


async def test_the_journal_drops_a_cuts_error_once_chunks_are_acknowledged_again(
    tmp_path: Path,
) -> None:
    transport = ChunkCounter()
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True, transport=transport) as s:
        berlin = s["Berlin"]
        h = {**admin(berlin), **NOVA}
        server_id = await active_server(berlin, h)
        relocator = ctx_of(berlin).slots.require(Relocator)
        journal: list[tuple[str, int, str | None]] = []
        change = relocator.repo.change

        async def recorded(relocation_id: str, **values: Any) -> Any:
            record = await change(relocation_id, **values)
            if record is not None:
                journal.append((record.phase, record.done_bytes, record.error))
            return record

        async def heal_on_retry(seconds: float) -> None:
            transport.cut_after = None
            transport.cut.clear()
            await asyncio.sleep(min(seconds, 0.05))

        relocator.repo.change = recorded  # type: ignore[method-assign,assignment]
        relocator.sleep = heal_on_retry
        transport.cut_after = 1  # one chunk reaches Paris, then the link goes
        r = await berlin.client.post(f"{C}/servers/{server_id}/action", headers=h,
                                     json={"os-edge:relocate": {"site": "Paris"}})  # fmt: skip
        assert r.status_code == 202, r.text

        async def done() -> bool:
            return bool(journal and journal[-1][0] in ("done", "failed"))

        await eventually(done, within=60, every=0.01, what="the move finished")
        assert journal[-1][:2] == ("done", len(DISK))
        cut = next(i for i, (_, _, error) in enumerate(journal) if error and "retrying" in error)
        cut_at = journal[cut][1]
        after = [(done_bytes, error) for phase, done_bytes, error in journal[cut:]
                 if phase == "sending" and done_bytes > cut_at]  # fmt: skip
        assert after, journal  # chunks were acknowledged after the cut, before the commit
        assert [error for _, error in after] == [None] * len(after), journal
