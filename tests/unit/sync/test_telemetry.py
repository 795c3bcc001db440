"""Sync telemetry: the figures the fleet service reads without I/O. Lag is the age of
the oldest undelivered row, computed at call time, so it grows while a peer is cut off
even between refreshes; each peer shows its backlog, its breaker and its last error;
conflicts are counted per source; the refresh loop follows a wake-up."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from sync_support import FakeClock

from edgefed.store.sync import (
    ConflictRepository,
    OutboxEntry,
    Outcome,
    Registrations,
    SyncReceiver,
    SyncRepository,
    delivery_rank,
)
from edgefed.sync import telemetry as telemetry_module
from edgefed.sync.telemetry import SyncTelemetry
from edgefed.testkit.wait import eventually


def entry(target: str, key: str) -> OutboxEntry:
    return OutboxEntry(target, "project", key, 1, "upsert", rank=delivery_rank("project", "upsert"))


def worker(state: str = "closed", last_error: str | None = None) -> Any:
    return SimpleNamespace(breaker=SimpleNamespace(state=state), last_error=last_error)


def telemetry_for(
    repo: SyncRepository, clock: FakeClock, workers: dict[str, Any] | None = None
) -> SyncTelemetry:
    return SyncTelemetry(
        repo=repo,
        conflicts=ConflictRepository(repo.store),
        delivery=SimpleNamespace(workers=workers or {}),  # type: ignore[arg-type]
        clock=clock,
        refresh_seconds=0.05,
    )


async def test_nothing_to_report_is_all_zero(repo: SyncRepository) -> None:
    telemetry = telemetry_for(repo, FakeClock())
    await telemetry.refresh()
    assert telemetry.report() == {
        "queue_depth": 0,
        "lag_seconds": 0.0,
        "conflicts": 0,
        "conflicts_by_source": {},
        "peers": {},
    }


async def test_lag_is_the_oldest_undelivered_rows_age_and_keeps_growing(
    repo: SyncRepository,
) -> None:
    clock = FakeClock(1000.0)
    await repo.enqueue([entry("Denver", "p1")], now=900.0, force=False)
    await repo.enqueue([entry("Denver", "p2"), entry("Lyon", "p3")], now=950.0, force=False)
    telemetry = telemetry_for(repo, clock)
    await telemetry.refresh()

    report = telemetry.report()
    assert report["queue_depth"] == 3
    assert report["lag_seconds"] == 100.0
    assert report["peers"]["Denver"]["pending"] == 2
    assert report["peers"]["Denver"]["oldest_pending_seconds"] == 100.0
    assert report["peers"]["Lyon"]["oldest_pending_seconds"] == 50.0

    clock.now += 30.0  # no refresh: the age is computed when asked
    assert telemetry.report()["lag_seconds"] == 130.0


async def test_delivered_rows_leave_the_backlog(repo: SyncRepository) -> None:
    clock = FakeClock(1000.0)
    queued = [entry("Denver", "p1"), entry("Denver", "p2")]
    await repo.enqueue(queued, now=900.0, force=False)
    await repo.settle_many([Outcome("Denver", done=queued, failed=[], now=990.0)])
    telemetry = telemetry_for(repo, clock)
    await telemetry.refresh()
    report = telemetry.report()
    assert report["queue_depth"] == 0 and report["lag_seconds"] == 0.0
    assert "Denver" not in report["peers"]


async def test_a_failing_peer_shows_its_error_the_workers_first(repo: SyncRepository) -> None:
    clock = FakeClock(1000.0)
    queued = [entry("Denver", "p1"), entry("Lyon", "p2")]
    await repo.enqueue(queued, now=900.0, force=False)
    failed = [(e, f"refused by {e.target}", 2000.0) for e in queued]
    await repo.settle_many(
        [
            Outcome("Denver", done=[], failed=failed[:1], now=950.0),
            Outcome("Lyon", done=[], failed=failed[1:], now=950.0),
        ]
    )
    workers = {"Denver": worker("open", "ConnectError: cut"), "Lyon": worker()}
    telemetry = telemetry_for(repo, clock, workers)
    await telemetry.refresh()
    peers = telemetry.report()["peers"]
    assert peers["Denver"] == {
        "pending": 1,
        "failing": 1,
        "breaker": "open",
        "last_error": "ConnectError: cut",  # the live transport error wins
        "oldest_pending_seconds": 100.0,
        "conflicts": 0,
    }
    assert peers["Lyon"]["last_error"] == "refused by Lyon"  # from the outbox row
    assert peers["Lyon"]["breaker"] == "closed"


async def test_a_parked_conflict_counts_for_its_peer_but_not_as_lag(repo: SyncRepository) -> None:
    clock = FakeClock(1000.0)
    queued = [entry("Denver", "p1")]
    await repo.enqueue(queued, now=900.0, force=False)
    await repo.settle_many(
        [Outcome("Denver", done=[], failed=[], now=950.0, conflicts=[(queued[0], "held")])]
    )
    telemetry = telemetry_for(repo, clock)
    await telemetry.refresh()
    report = telemetry.report()
    assert report["peers"]["Denver"]["conflicts"] == 1
    assert report["peers"]["Denver"]["pending"] == 0
    assert report["lag_seconds"] == 0.0


async def test_accepted_receivers_and_idle_workers_are_listed(repo: SyncRepository) -> None:
    registrations = Registrations(repo.store)
    await registrations.request_receiver("Denver", now=1.0, accept=True)
    await registrations.request_receiver("Pending", now=1.0, accept=False)
    telemetry = telemetry_for(repo, FakeClock(), {"Lyon": worker("half-open")})
    await telemetry.refresh()
    peers = telemetry.report()["peers"]
    assert sorted(peers) == ["Denver", "Lyon"]  # a pending request is no peer yet
    assert peers["Denver"]["breaker"] == "closed"
    assert peers["Lyon"]["breaker"] == "half-open"
    assert peers["Denver"]["pending"] == 0


def project(pid: str, name: str) -> dict[str, Any]:
    row = {"id": pid, "name": name, "domain_id": "default", "parent_id": "default",
           "description": "", "enabled": True, "tags": [], "extra": {}}  # fmt: skip
    return {"kind": "project", "key": pid, "version": 1, "op": "upsert", "row": row}


async def test_conflicts_are_counted_per_source(repo: SyncRepository) -> None:
    receiver = SyncReceiver(repo.store, max_blob_bytes=0)
    registrations = Registrations(repo.store)
    # A project of Berlin's own named "web" (received once from a source since gone).
    await receiver.apply_batch(
        source="Gone", items=[project("mine", "web")], has_blob=lambda _s: True, now=1.0
    )
    await registrations.remove_source("Gone")
    for source in ("Central", "Other"):
        await registrations.add_source(source, now=1.0)
    for source, pid in (("Other", "b"), ("Other", "c"), ("Central", "d")):
        outcome = await receiver.apply_batch(
            source=source, items=[project(pid, "web")], has_blob=lambda _s: True, now=3.0
        )
        assert [r["status"] for r in outcome.results] == ["conflict"]
    telemetry = telemetry_for(repo, FakeClock())
    await telemetry.refresh()
    report = telemetry.report()
    assert report["conflicts_by_source"] == {"Central": 1, "Other": 2}
    assert report["conflicts"] == 3


async def test_the_refresh_loop_follows_a_wake_up(repo: SyncRepository) -> None:
    telemetry = telemetry_for(repo, FakeClock(1000.0))
    telemetry.start()
    try:
        await repo.enqueue([entry("Denver", "p1")], now=990.0, force=False)
        telemetry.wake.set()

        async def seen() -> bool:
            return telemetry.report()["queue_depth"] == 1

        await eventually(seen, within=10, what="the queued row in the report")
        assert telemetry.report()["lag_seconds"] == 10.0
    finally:
        await telemetry.stop()
    await telemetry.stop()  # stopping twice is harmless


async def test_a_wake_up_during_a_refresh_brings_another_at_once(
    repo: SyncRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refresh awaits the database (PostgreSQL): a wake-up meanwhile must not be lost
    to the idle timer, made an hour here."""
    monkeypatch.setattr(telemetry_module, "IDLE_REFRESH_SECONDS", 3600.0)
    telemetry = telemetry_for(repo, FakeClock(1000.0))
    reading, answer = asyncio.Event(), asyncio.Event()
    list_receivers = repo.list_receivers

    async def slow_list_receivers() -> list[str]:
        found = await list_receivers()
        reading.set()
        await answer.wait()  # the backlog was read, empty; the refresh is not over
        return found

    async def seen() -> bool:
        return telemetry.report()["queue_depth"] == 1

    monkeypatch.setattr(repo, "list_receivers", slow_list_receivers)
    telemetry.start()
    try:
        await reading.wait()
        await repo.enqueue([entry("Denver", "p1")], now=990.0, force=False)
        telemetry.wake.set()
        answer.set()
        await eventually(seen, within=10, what="the queued row in the report")
    finally:
        await telemetry.stop()
