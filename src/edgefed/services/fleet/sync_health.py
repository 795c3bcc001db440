"""Sync health as fleet operations see it: the sync service's report, read
defensively, and the rule that says when sync to a peer counts as *failing*.

The sync engine fills the port ``ctx.sync_status`` (api/syncstatus.py), whose
``report()`` answers ``{"queue_depth", "lag_seconds", "conflicts", "conflicts_by_source",
"peers": {name: {"pending", "failing", "breaker", "last_error",
"oldest_pending_seconds", "conflicts"}}}``. Fleet operations never import the sync
package (services are siblings); they read this one port for the telemetry JSON, the
``/metrics`` gauges and the ``sync_failing`` and ``sync_conflict`` alarms, so all agree.
The port is empty on a site without the sync service, and a report that raises or is
malformed must not take the health monitor down: both read as "no sync report"
(``None``).

When sync to a peer is failing (the alarm's rule): its circuit breaker is open (the
engine gave up pushing for now), or it has had failing deliveries continuously for at
least ``sync_failing_alarm_seconds``. The second clause is timed by the monitor on its
own clock, from the first tick that saw failures, so a single retried push does not
raise an alarm, and a peer that drains its failures starts the count again.

When a sync source clashes with this site (the ``sync_conflict`` alarm's rule): rows it
pushed are held here as conflicts (this site's own rows, or another source's, that the
push may not change: docs/sync.md); cleared when they are resolved.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from edgefed.api.context import SiteContext

log = logging.getLogger("edgefed.fleet.sync")

BREAKER_STATES = ("closed", "open", "half-open")


@dataclass(frozen=True, slots=True)
class PeerSync:
    name: str
    pending: int
    failing: int
    breaker: str
    last_error: str | None
    oldest_pending_seconds: float
    conflicts: int = 0


def read_sync_telemetry(ctx: SiteContext) -> dict[str, Any] | None:
    """The sync service's report, normalised, or None (no sync service, or it failed)."""
    status = ctx.sync_status
    if status is None:
        return None
    try:
        return _normalise(status.report())
    except Exception:
        log.exception("the sync service's report failed; reporting no sync figures")
        return None


def _normalise(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise TypeError(f"sync telemetry must be a mapping, got {type(raw).__name__}")
    peers: dict[str, dict[str, Any]] = {}
    for name, values in (raw.get("peers") or {}).items():
        peer = _peer(str(name), values)
        peers[peer.name] = {
            "pending": peer.pending,
            "failing": peer.failing,
            "breaker": peer.breaker,
            "last_error": peer.last_error,
            "oldest_pending_seconds": peer.oldest_pending_seconds,
            "conflicts": peer.conflicts,
        }
    by_source = raw.get("conflicts_by_source") or {}
    if not isinstance(by_source, Mapping):
        raise TypeError("sync telemetry conflicts_by_source must be a mapping")
    conflicts = {str(name): int(n) for name, n in sorted(by_source.items()) if int(n) > 0}
    return {
        "queue_depth": int(raw.get("queue_depth") or 0),
        "lag_seconds": float(raw.get("lag_seconds") or 0.0),
        "conflicts": int(raw.get("conflicts") or sum(conflicts.values())),
        "conflicts_by_source": conflicts,
        "peers": dict(sorted(peers.items())),
    }


def _peer(name: str, values: Any) -> PeerSync:
    if not isinstance(values, Mapping):
        raise TypeError(f"sync telemetry of peer {name} must be a mapping")
    breaker = str(values.get("breaker") or "closed")
    if breaker not in BREAKER_STATES:
        raise ValueError(f"sync telemetry of peer {name}: unknown breaker state {breaker!r}")
    error = values.get("last_error")
    return PeerSync(
        name=name,
        pending=int(values.get("pending") or 0),
        failing=int(values.get("failing") or 0),
        breaker=breaker,
        last_error=None if error is None else str(error),
        oldest_pending_seconds=float(values.get("oldest_pending_seconds") or 0.0),
        conflicts=int(values.get("conflicts") or 0),
    )


def peers_of(report: Mapping[str, Any]) -> list[PeerSync]:
    return [_peer(name, values) for name, values in report["peers"].items()]


class FailingSyncRule:
    """Which peers sync is failing to, with the reason; remembers since when on ``now``."""

    def __init__(self, *, threshold_seconds: float, now: Callable[[], float]):
        self.threshold = threshold_seconds
        self.now = now
        self.failing_since: dict[str, float] = {}

    def evaluate(self, report: Mapping[str, Any]) -> dict[str, str]:
        """{peer: reason} for every peer sync is failing to right now."""
        now = self.now()
        out: dict[str, str] = {}
        seen: set[str] = set()
        for peer in peers_of(report):
            if peer.failing > 0:
                seen.add(peer.name)
                since = self.failing_since.setdefault(peer.name, now)
            else:
                since = None
            if peer.breaker == "open":
                out[peer.name] = _reason(peer, "its circuit breaker is open")
            elif since is not None and now - since >= self.threshold:
                out[peer.name] = _reason(peer, f"deliveries failing for {now - since:.0f} s")
        for name in list(self.failing_since):
            if name not in seen:
                del self.failing_since[name]
        return out


def _reason(peer: PeerSync, why: str) -> str:
    text = (
        f"sync to peer site {peer.name} is failing: {why}; {peer.pending} pending, "
        f"{peer.failing} failing, oldest waiting {peer.oldest_pending_seconds:.0f} s"
    )
    if peer.last_error:
        text += f"; last error: {peer.last_error[:300]}"
    return text


def conflicting_sources(report: Mapping[str, Any]) -> dict[str, str]:
    """{source: reason} for every sync source whose pushes clash with rows held here."""
    return {
        source: (
            f"{count} row{'s' if count != 1 else ''} pushed by sync source {source} "
            "clash with rows this site holds (its own, or another source's), and were not "
            "applied; see 'edgefed sync conflicts' to resolve them"
        )
        for source, count in report.get("conflicts_by_source", {}).items()
        if count > 0
    }
