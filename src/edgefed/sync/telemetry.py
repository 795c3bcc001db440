"""The sync engine's numbers for fleet operations, readable without I/O.

The fleet service (``/metrics``, the telemetry JSON, the "sync to a peer failing"
alarm) reads ``ctx.sync_status.report()`` on its own cadence (the port of
api/syncstatus.py, which ``SyncTelemetry`` implements). That call must be cheap and
synchronous, so the engine keeps the figures here: a background task reads the outbox
backlog once a second while there is one (one grouped query; with none, every
``IDLE_REFRESH_SECONDS`` or as soon as changes are queued), and the per-peer breaker
state and last transport error come live from the delivery workers. Ages are computed
at call time from when the oldest undelivered row was queued, so lag keeps growing
between refreshes while a peer is cut off.

The receiver side adds the conflicts recorded here (pushes that clashed with a row this
site holds, per source), which the fleet service turns into a ``sync_conflict`` alarm.

Shape (``api.syncstatus.SyncReport``, documented in docs/sync.md)::

    {"queue_depth": int, "lag_seconds": float,
     "conflicts": int, "conflicts_by_source": {source: int},
     "peers": {name: {"pending": int, "failing": int, "breaker": "closed"|"open"|"half-open",
                      "last_error": str | None, "oldest_pending_seconds": float,
                      "conflicts": int}}}
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from edgefed.api.syncstatus import PeerSyncReport, SyncReport
from edgefed.store.sync import ConflictRepository, PeerBacklog, SyncRepository
from edgefed.sync.breaker import CLOSED
from edgefed.sync.delivery import Delivery

log = logging.getLogger("edgefed.sync.telemetry")

REFRESH_SECONDS = 1.0
IDLE_REFRESH_SECONDS = 10.0


class SyncTelemetry:
    def __init__(
        self,
        *,
        repo: SyncRepository,
        conflicts: ConflictRepository,
        delivery: Delivery,
        clock: Callable[[], float],
        refresh_seconds: float = REFRESH_SECONDS,
    ):
        self.repo = repo
        self.conflicts = conflicts
        self.conflicts_by_source: dict[str, int] = {}
        self.delivery = delivery
        self.clock = clock
        self.refresh_seconds = refresh_seconds
        self.backlog: dict[str, PeerBacklog] = {}
        self.receivers: list[str] = []
        self.wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def report(self) -> SyncReport:
        """The current figures (no I/O)."""
        now = self.clock()
        peers: dict[str, PeerSyncReport] = {}
        names = set(self.receivers) | set(self.backlog) | set(self.delivery.workers)
        for name in sorted(names):
            backlog = self.backlog.get(name)
            worker = self.delivery.workers.get(name)
            pending = backlog.pending if backlog else 0
            age = max(0.0, now - backlog.oldest_queued_at) if backlog and pending else 0.0
            last_error = worker.last_error if worker is not None else None
            if last_error is None and backlog is not None and backlog.failing:
                last_error = backlog.last_error
            peers[name] = {
                "pending": pending,
                "failing": backlog.failing if backlog else 0,
                "breaker": worker.breaker.state if worker is not None else CLOSED,
                "last_error": last_error,
                "oldest_pending_seconds": round(age, 3),
                "conflicts": backlog.conflicts if backlog else 0,
            }
        return {
            "queue_depth": sum(p["pending"] for p in peers.values()),
            "lag_seconds": max((p["oldest_pending_seconds"] for p in peers.values()), default=0.0),
            "conflicts": sum(self.conflicts_by_source.values()),
            "conflicts_by_source": dict(self.conflicts_by_source),
            "peers": peers,
        }

    async def refresh(self) -> None:
        self.backlog = await self.repo.backlog()
        self.receivers = await self.repo.list_receivers()
        self.conflicts_by_source = await self.conflicts.counts()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sync-telemetry")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            # Cleared before the refresh, not after it: a wake that comes while the
            # refresh reads (awaiting PostgreSQL) then brings another one at once.
            self.wake.clear()
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("refreshing sync telemetry failed; retrying")
            idle = not any(b.pending for b in self.backlog.values())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(IDLE_REFRESH_SECONDS if idle else self.refresh_seconds):
                    await self.wake.wait()
