"""The health monitor's ticks on a fake clock: which alarms it raises and clears, what
it shares with the router, what a light tick leaves alone, and that the loop goes on
after a tick that failed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fleet_kit import add_member

from edgefed.core.settings import HostSpec
from edgefed.services.fleet.monitor import HealthMonitor
from edgefed.store.alarms import AlarmFilter, AlarmRepository, Severity
from edgefed.store.inventory import InventoryRepository, NewHost
from edgefed.testkit.asgi_fleet import FleetTransport
from edgefed.testkit.inprocess import InProcessSite, run_site, site_settings
from edgefed.testkit.inprocess_fleet import ctx_of
from edgefed.testkit.wait import eventually


@contextlib.asynccontextmanager
async def berlin_with_peer(
    tmp_path: Path, **settings: Any
) -> AsyncIterator[tuple[InProcessSite, FleetTransport]]:
    """Berlin (its own monitor idle) and Paris, a member that answers pings."""
    transport = FleetTransport()
    values: dict[str, Any] = {"health_interval_seconds": 3600.0, "gossip_interval_seconds": 3600.0}
    values.update(settings)
    async with run_site(site_settings(tmp_path / "berlin", **values), transport=transport) as site:
        await add_member(site, "Paris")
        transport.apps["paris.test"] = httpx.MockTransport(lambda r: httpx.Response(204))  # type: ignore[assignment]
        yield site, transport


async def active(site: InProcessSite, type: str) -> list[Any]:
    return await AlarmRepository(ctx_of(site).store).active_of_type(type)


async def test_an_offline_peer_is_shared_with_the_router_and_alarmed_once(tmp_path: Path) -> None:
    async with berlin_with_peer(tmp_path) as (site, transport):
        clock = [1000.0]
        monitor = HealthMonitor(ctx_of(site), now=lambda: clock[0])
        await monitor.tick()
        assert ctx_of(site).fleet.down == {}  # type: ignore[union-attr]
        transport.cut.add("paris.test")
        clock[0] += 10.0
        await monitor.tick()
        down = ctx_of(site).fleet.down  # type: ignore[union-attr]
        assert list(down) == ["Paris"] and "no answer for 10 s" in down["Paris"]
        [alarm] = await active(site, "peer_unreachable")
        clock[0] += 1.0
        await monitor.tick()
        [again] = await active(site, "peer_unreachable")
        assert again.id == alarm.id
        # Its reason follows the condition (how long it has been silent).
        assert "no answer for 11 s" in again.reason
        assert monitor.ticks == 3


async def test_a_light_tick_writes_nothing_unless_the_offline_peers_changed(
    tmp_path: Path,
) -> None:
    async with berlin_with_peer(tmp_path) as (site, transport):
        clock = [1000.0]
        ctx = ctx_of(site)
        monitor = HealthMonitor(ctx, now=lambda: clock[0])
        transport.cut.add("paris.test")
        clock[0] += 10.0
        await monitor.tick(full=False)  # the set of offline peers changed: reconciled
        [alarm] = await active(site, "peer_unreachable")
        # An operator clears it by hand; light ticks leave the store alone…
        await AlarmRepository(ctx.store).clear(alarm.id, now=clock[0], cleared_by="op")
        await monitor.tick(full=False)
        assert await active(site, "peer_unreachable") == []
        # …and the next full tick puts the truth back.
        await monitor.tick(full=True)
        assert len(await active(site, "peer_unreachable")) == 1
        # Paris back: a light tick sees the change at once and clears the alarm.
        transport.cut.discard("paris.test")
        await monitor.tick(full=False)
        assert await active(site, "peer_unreachable") == []


async def test_a_revoked_peer_is_no_longer_unreachable(tmp_path: Path) -> None:
    async with berlin_with_peer(tmp_path) as (site, transport):
        clock = [1000.0]
        monitor = HealthMonitor(ctx_of(site), now=lambda: clock[0])
        transport.cut.add("paris.test")
        clock[0] += 10.0
        await monitor.tick()
        assert len(await active(site, "peer_unreachable")) == 1
        await site.client.delete(
            "/edge/v1/fleet/sites/Paris", headers={"X-Auth-Token": await site.token()}
        )
        await monitor.tick()
        assert await active(site, "peer_unreachable") == []
        assert monitor.peers == {}


async def test_a_host_down_in_the_inventory_is_a_critical_alarm_until_it_is_back(
    site: InProcessSite,
) -> None:
    ctx = ctx_of(site)
    hosts = InventoryRepository(ctx.store).hosts
    host = await hosts.create(
        new=NewHost(
            id="h1", hostname="edge-7", personality="edgeworker", mgmt_ip=None, availability="down"
        )
    )
    monitor = HealthMonitor(ctx)
    await monitor.tick(probe=False)
    [alarm] = await active(site, "host_down")
    assert alarm.entity == "host=edge-7" and alarm.severity == Severity.CRITICAL.value
    assert "its agent stopped reporting" in alarm.reason
    await hosts.update(id=host.id, changes={"availability": "available"})
    await monitor.tick(probe=False)
    assert await active(site, "host_down") == []


async def test_capacity_alarms_of_other_entities_are_not_this_monitors_to_clear(
    tmp_path: Path,
) -> None:
    settings = site_settings(
        tmp_path / "berlin",
        compute_hosts=(HostSpec(name="b1", vcpus=1, ram_mb=1024, disk_gb=10),),
        health_interval_seconds=3600.0,
    )
    async with run_site(settings) as site:
        ctx = ctx_of(site)
        repo = AlarmRepository(ctx.store)
        # An operator's capacity alarm about a rack, and a stale one about this site.
        await repo.raise_alarm(
            type="capacity",
            severity=Severity.MINOR,
            entity="rack=2",
            reason="cooling",
            now=1.0,
            origin="operator",
        )
        await repo.raise_alarm(
            type="capacity",
            severity=Severity.MAJOR,
            entity="site=Berlin.resource=vcpus",
            reason="old",
            now=1.0,
        )
        await HealthMonitor(ctx).tick(probe=False)
        assert [a.entity for a in await active(site, "capacity")] == ["rack=2"]


async def test_the_loop_goes_on_after_a_tick_that_failed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = site_settings(tmp_path / "berlin", health_interval_seconds=0.01)
    async with run_site(settings) as site:
        monitor = HealthMonitor(ctx_of(site))
        failures = [RuntimeError("disk on fire")]
        real_assess = monitor.watch.assess

        def assess() -> Any:
            if failures:
                raise failures.pop()
            return real_assess()

        monitor.watch.assess = assess  # type: ignore[method-assign]
        with caplog.at_level(logging.ERROR, logger="edgefed.fleet.health"):
            task = asyncio.create_task(monitor.run())
            try:

                async def ticked_twice() -> bool:
                    return monitor.ticks >= 2

                await eventually(ticked_twice, within=10.0, what="two good ticks")
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        assert "health evaluation failed" in caplog.text and "disk on fire" in caplog.text


async def test_the_sites_own_monitor_runs_in_the_background(tmp_path: Path) -> None:
    settings = site_settings(tmp_path / "berlin", health_interval_seconds=0.01)
    async with run_site(settings) as site:
        monitor = ctx_of(site).slots.require(HealthMonitor)

        async def ticking() -> bool:
            return monitor.ticks >= 3

        await eventually(ticking, within=10.0, what="the background monitor ticking")
        found = await AlarmRepository(ctx_of(site).store).find(AlarmFilter())
        assert found == []  # a lone healthy site raises nothing
