"""Peer health: online, degraded or offline, with the reason, within seconds.

A peer is *online* when this site reached it (its probe answered) within
``peer_timeout_seconds``; *offline* past it, with how long ago it was last heard (or
that it never was); *degraded* when it answers but its RTT is above
``degraded_rtt_ms``. The monitor pings (``GET /edge/v1/ping``) every peer it has not
reached for half the timeout. Gossip is not the signal: it talks to a random sample of
peers in a large fleet, and an inbound gossip proves the peer can reach us, not that
we can reach it (an asymmetric partition).

``assess_peer`` is the state machine, a pure function of the times; the monitor
feeds it the fleet view and a monotonic clock (injectable for tests).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx

from edgefed.api.context import SiteContext
from edgefed.api.remote import describe_http_error
from edgefed.core.errors import BadRequest
from edgefed.core.scope import parse_expr
from edgefed.core.scope_resolve import sites_of

PROBE_PATH = "/edge/v1/ping"
MAX_PARALLEL_PROBES = 32


class Condition(StrEnum):
    ONLINE = "online"
    DEGRADED = "degraded"
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class PeerHealth:
    name: str
    status: Condition
    reason: str
    last_seen_seconds_ago: float | None
    rtt_ms: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "reason": self.reason,
            "last_seen_seconds_ago": (
                None if self.last_seen_seconds_ago is None else round(self.last_seen_seconds_ago, 1)
            ),
            "rtt_ms": None if self.rtt_ms is None else round(self.rtt_ms, 1),
        }


def assess_peer(
    *,
    name: str,
    now: float,
    last_contact: float | None,
    watched_since: float,
    timeout: float,
    rtt_ms: float | None,
    degraded_rtt_ms: float,
    last_error: str | None = None,
) -> PeerHealth:
    """The health of one peer at ``now`` (all times on one monotonic clock)."""
    if last_contact is None:
        waited = now - watched_since
        if waited <= timeout:
            return PeerHealth(name, Condition.ONLINE, "not heard from yet", None, rtt_ms)
        reason = f"no answer since this site started watching it {waited:.0f} s ago"
        if last_error:
            reason += f" (last error: {last_error})"
        return PeerHealth(name, Condition.OFFLINE, reason, None, rtt_ms)
    age = max(0.0, now - last_contact)
    if age > timeout:
        reason = f"no answer for {age:.0f} s (timeout {timeout:g} s)"
        if last_error:
            reason += f"; last error: {last_error}"
        return PeerHealth(name, Condition.OFFLINE, reason, age, rtt_ms)
    if rtt_ms is not None and rtt_ms > degraded_rtt_ms:
        return PeerHealth(
            name,
            Condition.DEGRADED,
            f"RTT {rtt_ms:.0f} ms is above {degraded_rtt_ms:g} ms",
            age,
            rtt_ms,
        )
    return PeerHealth(name, Condition.ONLINE, "answering", age, rtt_ms)


class PeerWatch:
    """Combines gossip contact times with this site's own probes of quiet peers."""

    def __init__(self, ctx: SiteContext, *, now: Callable[[], float] = time.monotonic):
        self.ctx = ctx
        self.now = now
        self.started = now()
        self.probed_ok: dict[str, float] = {}
        self.last_error: dict[str, str] = {}

    def peers(self) -> list[str]:
        """The peers this site watches.

        Every peer in a fleet of at most ``watch_all_peers_max_sites`` sites. In a larger
        one, only the sites it aggregates (``fleet_aggregate``): every site probing every
        other is N² requests (a thousand sites: a third of a million probes a second,
        each site answering and sending 333 a second), and a site's routing does not
        need it (the router tries an unwatched site and falls back on its failure).
        """
        fleet = self.ctx.fleet
        if fleet is None:
            return []
        names = [n for n in fleet.site_names() if n != self.ctx.name]
        if len(names) < self.ctx.settings.watch_all_peers_max_sites:
            return names
        scope = self.ctx.settings.fleet_aggregate
        if not scope:
            return []
        try:
            watched = set(sites_of(parse_expr(scope), fleet))
        except BadRequest:
            return []
        return [n for n in names if n in watched]

    def last_contact(self, name: str) -> float | None:
        """When this site last *reached* the peer (its own outbound probe answered).

        Inbound gossip does not count: a peer that can still send to us but that we
        cannot reach (an asymmetric partition) is unreachable from here.
        """
        return self.probed_ok.get(name)

    def heard_from(self, name: str) -> float | None:
        return self.ctx.fleet.last_seen.get(name) if self.ctx.fleet is not None else None

    def assess(self) -> dict[str, PeerHealth]:
        now = self.now()
        settings = self.ctx.settings
        out: dict[str, PeerHealth] = {}
        for name in self.peers():
            rtt = self.ctx.fleet.rtt_ms(self.ctx.name, name) if self.ctx.fleet else None
            out[name] = assess_peer(
                name=name,
                now=now,
                last_contact=self.last_contact(name),
                watched_since=self.started,
                timeout=settings.peer_timeout_seconds,
                rtt_ms=rtt,
                degraded_rtt_ms=settings.degraded_rtt_ms,
                last_error=self.last_error.get(name),
            )
            heard = self.heard_from(name)
            health = out[name]
            if (
                health.status is Condition.OFFLINE
                and heard is not None
                and now - heard < 2 * (settings.peer_timeout_seconds)
            ):
                out[name] = dataclasses.replace(
                    health, reason=health.reason + f"; it still reached us {now - heard:.0f} s ago"
                )
        return out

    def quiet_peers(self) -> list[str]:
        """Peers not heard from for half the timeout: worth a probe."""
        now = self.now()
        horizon = self.ctx.settings.peer_timeout_seconds / 2
        quiet = []
        for name in self.peers():
            contact = self.last_contact(name)
            if contact is None or now - contact > horizon:
                quiet.append(name)
        return quiet

    async def probe(self, names: list[str]) -> None:
        timeout = max(0.5, min(3.0, self.ctx.settings.peer_timeout_seconds / 2))
        gate = asyncio.Semaphore(MAX_PARALLEL_PROBES)

        async def one(name: str) -> None:
            url = self.ctx.peers.get(name)
            if url is None:
                return
            async with gate:
                try:
                    r = await self.ctx.http.get(url + PROBE_PATH, timeout=timeout)
                except httpx.HTTPError as exc:
                    self.last_error[name] = describe_http_error(exc)
                    return
            if r.status_code < 500:
                self.probed_ok[name] = self.now()
                self.last_error.pop(name, None)
            else:
                self.last_error[name] = f"HTTP {r.status_code}"

        await asyncio.gather(*(one(n) for n in names))
