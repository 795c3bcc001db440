"""Draining Berlin (sites in this process, fake driver): its guests go to the sites the
drain names, the nearest with room first, while Berlin takes no new server and an
alarm says how far it is; once no guest is left the drain is ``drained``; an undrain
clears the alarm and opens Berlin again, and undoes the moves that had not reached
their commit (their guests run at Berlin again)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from relocation_support import NOVA, C, ChunkCounter, active_server, status_is

from edgefed.services.compute.relocation_out import Relocator
from edgefed.store.alarms import AlarmRepository
from edgefed.testkit.inprocess import InProcessSite
from edgefed.testkit.inprocess_fleet import admin, ctx_of, fleet
from edgefed.testkit.wait import eventually

DRAIN = f"{C}/os-edge/drain"


async def drain_of(berlin: InProcessSite) -> dict[str, Any]:
    r = await berlin.client.get(DRAIN, headers={**admin(berlin), **NOVA})
    assert r.status_code == 200, r.text
    return dict(r.json()["drain"])


async def alarm_reason(site: InProcessSite) -> str | None:
    found = await AlarmRepository(ctx_of(site).store).active_of_type("site_draining")
    return found[0].reason if found else None


async def test_a_drained_site_s_guests_run_elsewhere_and_it_takes_none_until_undrained(
    tmp_path: Path,
) -> None:
    async with fleet(tmp_path, ["Berlin", "Paris", "Denver"], joined=True) as s:
        berlin = s["Berlin"]
        h = {**admin(berlin), **NOVA}
        servers = [await active_server(berlin, h) for _ in range(3)]

        r = await berlin.client.post(DRAIN, json={"drain": {"to": "Paris&Denver"}}, headers=h)
        assert r.status_code == 202, r.text
        assert r.json()["drain"]["total"] == 3
        body = {"server": {"name": "late", "imageRef": "x", "flavorRef": "1", "networks": "none"}}
        r = await berlin.client.post(f"{C}/servers", json=body, headers=h)
        assert r.status_code == 409 and "is being drained" in r.text
        assert "draining to Paris&Denver" in (await alarm_reason(berlin) or "")

        async def drained() -> bool:
            return (await drain_of(berlin))["state"] == "drained"

        await eventually(drained, within=60, every=0.02, what="Berlin drained")
        shown = await drain_of(berlin)
        assert shown["moved"] == 3 and {x["site"] for x in shown["servers"]} <= {"Paris", "Denver"}
        for entry in shown["servers"]:
            site = s[entry["site"]]
            await status_is(site, {**admin(site), **NOVA}, entry["server_id"], "ACTIVE")
        assert sorted(x["server_id"] for x in shown["servers"]) == sorted(servers)
        assert "no guest left" in (await alarm_reason(berlin) or "")

        r = await berlin.client.delete(DRAIN, headers=h)
        assert r.status_code == 204
        assert await alarm_reason(berlin) is None
        r = await berlin.client.get(DRAIN, headers=h)
        assert r.status_code == 404
        await active_server(berlin, h)  # open again


async def test_an_undrain_brings_back_the_guests_whose_move_had_not_committed(
    tmp_path: Path,
) -> None:
    transport = ChunkCounter()
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True, transport=transport) as s:
        berlin = s["Berlin"]
        h = {**admin(berlin), **NOVA}
        servers = [await active_server(berlin, h) for _ in range(2)]
        relocator = ctx_of(berlin).slots.require(Relocator)
        stalled = asyncio.Event()

        async def stall(seconds: float) -> None:
            stalled.set()  # the link to Paris is down: the moves wait
            await asyncio.Event().wait()

        relocator.sleep = stall
        transport.cut_after = 0
        r = await berlin.client.post(DRAIN, json={"drain": {"to": "Paris"}}, headers=h)
        assert r.status_code == 202, r.text
        await asyncio.wait_for(stalled.wait(), 30)

        r = await berlin.client.delete(DRAIN, headers=h)
        assert r.status_code == 204
        for server_id in servers:
            await status_is(berlin, h, server_id, "ACTIVE")
        assert await alarm_reason(berlin) is None
