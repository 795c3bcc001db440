"""What the sync engine tells fleet operations: its figures, read without I/O.

The port the sync service fills (``SiteContext.sync_status``, None on a site without
it). Fleet operations read it on their own cadence for the telemetry JSON, the
``/metrics`` gauges and the ``sync_failing`` and ``sync_conflict`` alarms
(services/fleet/sync_health.py), so all three agree; they never import the sync
package. A report must be cheap and synchronous: the engine keeps the figures up to date
in the background (sync/telemetry.py). The shape is documented in docs/sync.md.
"""

from __future__ import annotations

from typing import Protocol, TypedDict


class PeerSyncReport(TypedDict):
    pending: int  # undelivered rows for this peer
    failing: int  # of which failed at least once and wait to retry
    breaker: str  # "closed", "open" or "half-open"
    last_error: str | None
    oldest_pending_seconds: float
    conflicts: int  # rows parked: the peer holds its own there


class SyncReport(TypedDict):
    queue_depth: int  # undelivered rows, all peers
    lag_seconds: float  # age of the oldest undelivered row; 0.0 when none
    conflicts: int  # clashes recorded here (this site as a receiver)
    conflicts_by_source: dict[str, int]
    peers: dict[str, PeerSyncReport]


class SyncStatus(Protocol):
    def report(self) -> SyncReport:
        """The current figures (no I/O)."""
        ...
