"""A server in the middle of a relocation, as lists show it (sites in this process, fake
driver): Berlin's view of it says where it goes (``os-edge:relocating_to``); once Paris
has it too (committed, not yet ACTIVE), a list scoped to both sites shows it once, at
Paris; after the move, once, at Paris."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from relocation_support import NOVA, C, active_server, moved, relocate, status_is

from edgefed.services.compute.state import ComputeState
from edgefed.store.compute import Relocations
from edgefed.testkit.inprocess import InProcessSite
from edgefed.testkit.inprocess_fleet import admin, ctx_of, fleet
from edgefed.testkit.wait import eventually


async def listed(site: InProcessSite, h: dict[str, str], scope: str) -> list[tuple[str, str, str]]:
    r = await site.client.get(f"{C}/servers/detail", headers={**h, "X-Scope": scope})
    assert r.status_code == 200, r.text
    return [(s["id"], s["os-scope:site"], s["status"]) for s in r.json()["servers"]]


async def test_a_moving_server_is_listed_once_where_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True) as s:
        berlin, paris = s["Berlin"], s["Paris"]
        h = {**admin(berlin), **NOVA}
        server_id = await active_server(berlin, h)
        both = "{compute: Berlin&Paris}"

        # Paris's guest starts only when the test says so: the move waits in "starting".
        driver = ctx_of(paris).slots.require(ComputeState).driver
        spawn, go = driver.spawn, asyncio.Event()

        async def held_spawn(spec: Any) -> None:
            await go.wait()
            await spawn(spec)

        monkeypatch.setattr(driver, "spawn", held_spawn)
        r = await relocate(berlin, h, server_id)
        assert r.status_code == 202, r.text

        async def starting() -> bool:
            [record] = await Relocations(ctx_of(berlin).store).list(direction="out")
            return record.phase == "starting"

        await eventually(starting, within=30, every=0.01, what="the move starting at Paris")
        r = await berlin.client.get(f"{C}/servers/{server_id}", headers=h)
        shown = r.json()["server"]
        assert (shown["status"], shown["os-edge:relocating_to"]) == ("MIGRATING", "Paris")
        assert await listed(berlin, h, both) == [(server_id, "Paris", "BUILD")]

        go.set()
        await status_is(paris, {**admin(paris), **NOVA}, server_id, "ACTIVE")

        await moved(berlin, h, server_id)
        assert await listed(berlin, h, both) == [(server_id, "Paris", "ACTIVE")]
