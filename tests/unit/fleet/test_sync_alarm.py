"""The "sync to a peer failing" alarm and the sync figures in telemetry and /metrics,
fed by a fake of the sync service's report (the ``ctx.sync_status`` port, the seam
between the two services) on an injected clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edgefed.services.fleet.monitor import HealthMonitor
from edgefed.testkit.inprocess import InProcessSite, run_site, site_settings
from edgefed.testkit.inprocess_fleet import admin, ctx_of


class FakeSyncTelemetry:
    """Stands in for the sync engine's telemetry: reports whatever the test set."""

    def __init__(self) -> None:
        self.peers: dict[str, dict[str, Any]] = {}
        self.conflicts: dict[str, int] = {}
        self.broken = False

    def peer(self, name: str, **values: Any) -> None:
        self.peers[name] = {
            "pending": 0,
            "failing": 0,
            "breaker": "closed",
            "last_error": None,
            "oldest_pending_seconds": 0.0,
            **values,
        }

    def report(self) -> dict[str, Any]:
        if self.broken:
            raise RuntimeError("sync engine is restarting")
        depth = sum(p["pending"] for p in self.peers.values())
        lag = max((p["oldest_pending_seconds"] for p in self.peers.values()), default=0.0)
        return {
            "queue_depth": depth,
            "lag_seconds": lag,
            "conflicts": sum(self.conflicts.values()),
            "conflicts_by_source": dict(self.conflicts),
            "peers": dict(self.peers),
        }


@pytest.fixture
async def quiet_site(tmp_path: Path) -> AsyncIterator[InProcessSite]:
    """A site whose own background monitor stays out of the way (the test ticks)."""
    settings = site_settings(
        tmp_path / "b", health_interval_seconds=3600.0, sync_failing_alarm_seconds=30.0
    )
    async with run_site(settings) as site:
        yield site


async def alarms_of(site: InProcessSite, kind: str) -> list[dict[str, Any]]:
    """This site's alarms of type ``kind`` (``sync_failing``, ``sync_conflict``)."""
    r = await site.client.get(f"/edge/v1/alarms?type={kind}", headers=admin(site))
    assert r.status_code == 200, r.text
    alarms: list[dict[str, Any]] = r.json()["alarms"]
    return alarms


async def sync_alarms(site: InProcessSite) -> list[dict[str, Any]]:
    return await alarms_of(site, "sync_failing")


async def test_an_open_breaker_raises_sync_failing_at_once_and_recovery_clears_it(
    quiet_site: InProcessSite,
) -> None:
    hook = FakeSyncTelemetry()
    ctx = ctx_of(quiet_site)
    ctx.sync_status = hook
    clock = [500.0]
    monitor = HealthMonitor(ctx, now=lambda: clock[0])
    hook.peer("Denver", pending=12, failing=12, breaker="open", last_error="connect refused")
    hook.peer("Paris", pending=3)
    await monitor.tick(probe=False)
    [alarm] = await sync_alarms(quiet_site)
    assert alarm["entity"] == "site=Denver" and alarm["severity"] == "major"
    assert "breaker is open" in alarm["reason"] and "connect refused" in alarm["reason"]
    assert "12 pending" in alarm["reason"]

    r = await quiet_site.client.get("/edge/v1/health", headers=admin(quiet_site))
    assert r.json()["health"]["status"] == "online"  # an alarm about a peer, not about us

    hook.peer("Denver", pending=0)  # the breaker closed and the backlog drained
    clock[0] += 5
    await monitor.tick(probe=False)
    assert await sync_alarms(quiet_site) == []
    r = await quiet_site.client.get(
        "/edge/v1/alarms?type=sync_failing&state=cleared", headers=admin(quiet_site)
    )
    [cleared] = r.json()["alarms"]
    assert cleared["cleared_by"] == "site"


async def test_failing_deliveries_raise_only_past_the_threshold(
    quiet_site: InProcessSite,
) -> None:
    hook = FakeSyncTelemetry()
    ctx = ctx_of(quiet_site)
    ctx.sync_status = hook
    clock = [1000.0]
    monitor = HealthMonitor(ctx, now=lambda: clock[0])
    hook.peer("Denver", pending=4, failing=2, oldest_pending_seconds=3.0, last_error="HTTP 503")
    await monitor.tick(probe=False)
    clock[0] += 29.0
    await monitor.tick(probe=False)
    assert await sync_alarms(quiet_site) == []  # retries under the threshold are no alarm
    clock[0] += 2.0
    await monitor.tick(probe=False)
    [alarm] = await sync_alarms(quiet_site)
    assert "failing for 31 s" in alarm["reason"] and "HTTP 503" in alarm["reason"]

    hook.peer("Denver", pending=1, failing=0)  # delivered again: cleared, count restarts
    clock[0] += 1.0
    await monitor.tick(probe=False)
    assert await sync_alarms(quiet_site) == []
    hook.peer("Denver", pending=1, failing=1)
    clock[0] += 10.0
    await monitor.tick(probe=False)
    assert await sync_alarms(quiet_site) == []


async def test_a_site_without_sync_or_with_a_broken_hook_keeps_its_alarms_quiet(
    quiet_site: InProcessSite,
) -> None:
    ctx = ctx_of(quiet_site)
    ctx.sync_status = None  # a site built without the sync service
    clock = [0.0]
    monitor = HealthMonitor(ctx, now=lambda: clock[0])
    await monitor.tick(probe=False)
    r = await quiet_site.client.get("/edge/v1/telemetry", headers=admin(quiet_site))
    assert r.json()["telemetry"]["sync"] is None
    hook = FakeSyncTelemetry()
    hook.peer("Denver", failing=1, breaker="open")
    ctx.sync_status = hook
    await monitor.tick(probe=False)
    assert len(await sync_alarms(quiet_site)) == 1
    hook.broken = True  # no news is not good news: the alarm stays, the tick survives
    await monitor.tick(probe=False)
    assert len(await sync_alarms(quiet_site)) == 1
    r = await quiet_site.client.get("/edge/v1/telemetry", headers=admin(quiet_site))
    assert r.status_code == 200 and r.json()["telemetry"]["sync"] is None


async def test_telemetry_and_metrics_show_the_same_sync_figures(
    quiet_site: InProcessSite,
) -> None:
    hook = FakeSyncTelemetry()
    ctx_of(quiet_site).sync_status = hook
    hook.peer("Denver", pending=7, failing=2, breaker="half-open", oldest_pending_seconds=42.5)
    hook.peer("Paris", pending=1, oldest_pending_seconds=0.5)
    r = await quiet_site.client.get("/edge/v1/telemetry", headers=admin(quiet_site))
    sync = r.json()["telemetry"]["sync"]
    assert sync["queue_depth"] == 8 and sync["lag_seconds"] == 42.5
    assert sync["peers"]["Denver"]["breaker"] == "half-open"
    assert list(sync["peers"]) == ["Denver", "Paris"]

    text = (await quiet_site.client.get("/metrics")).text
    assert 'edgefed_sync_queue_depth{site="Berlin"} 8.0' in text
    assert 'edgefed_sync_lag_seconds{site="Berlin"} 42.5' in text
    assert 'edgefed_sync_peer_pending{peer="Denver",site="Berlin"} 7.0' in text
    assert 'edgefed_sync_peer_failing{peer="Denver",site="Berlin"} 2.0' in text
    assert 'edgefed_sync_peer_breaker_open{peer="Denver",site="Berlin"} 0.5' in text
    assert 'edgefed_sync_peer_oldest_pending_seconds{peer="Paris",site="Berlin"} 0.5' in text


async def test_the_real_sync_service_fills_the_sync_slot(quiet_site: InProcessSite) -> None:
    r = await quiet_site.client.get("/edge/v1/telemetry", headers=admin(quiet_site))
    sync = r.json()["telemetry"]["sync"]
    assert sync == {
        "queue_depth": 0,
        "lag_seconds": 0.0,
        "conflicts": 0,
        "conflicts_by_source": {},
        "peers": {},
    }


async def sync_conflict_alarms(site: InProcessSite) -> list[dict[str, Any]]:
    return await alarms_of(site, "sync_conflict")


async def test_conflicts_with_a_source_raise_sync_conflict_until_resolved(
    quiet_site: InProcessSite,
) -> None:
    hook = FakeSyncTelemetry()
    ctx = ctx_of(quiet_site)
    ctx.sync_status = hook
    monitor = HealthMonitor(ctx, now=lambda: 0.0)
    hook.conflicts = {"Central": 3}
    await monitor.tick(probe=False)
    [alarm] = await sync_conflict_alarms(quiet_site)
    assert alarm["entity"] == "site=Central" and alarm["severity"] == "minor"
    assert "3 rows pushed by sync source Central" in alarm["reason"]
    assert "edgefed sync conflicts" in alarm["reason"]
    text = (await quiet_site.client.get("/metrics")).text
    assert 'edgefed_sync_conflicts{site="Berlin",source="Central"} 3.0' in text

    hook.conflicts = {}  # resolved
    await monitor.tick(probe=False)
    assert await sync_conflict_alarms(quiet_site) == []
