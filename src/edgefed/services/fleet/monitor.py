"""The site's own watchman: every ``health_interval_seconds`` it probes quiet peers,
assesses every peer, and raises or clears its automatic alarms.

Alarms are raised idempotently (one active alarm per type and entity) and cleared
when the condition goes away, so the loop can run every second without noise:

- ``peer_unreachable`` (major, entity ``site=<peer>``): a peer is offline;
- ``sync_failing`` (major, entity ``site=<peer>``): sync to a peer is failing (its
  breaker is open, or deliveries have failed for ``sync_failing_alarm_seconds``; see
  ``sync_health``);
- ``sync_conflict`` (minor, entity ``site=<source>``): rows a sync source pushed clash
  with rows this site holds and were not applied (``edgefed sync conflicts``);
- ``capacity`` (major, entity ``site=<me>.resource=<r>``): use of vCPUs, RAM or disk
  above ``capacity_alarm_percent``;
- ``host_down`` (critical, entity ``host=<hostname>``): the hosts inventory marked a
  host down (its agent went silent).

Each tick reads the active alarms of a type once and writes only what changed: in a
fleet of a hundred sites, one write transaction per peer per second would be the
site's busiest workload. The loop is also what an idle site spends its CPU on, so only
peer health (in memory) is evaluated every tick, and its alarms reconciled with the
store when the set of offline peers changes; the checks that read the store (sync,
capacity, hosts, and a peer-alarm reconcile that undoes any manual interference) run
every ``FULL_CHECK_EVERY`` ticks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from edgefed.api.context import SiteContext
from edgefed.services.fleet.health import Condition, PeerHealth, PeerWatch
from edgefed.services.fleet.sync_health import (
    FailingSyncRule,
    conflicting_sources,
    read_sync_telemetry,
)
from edgefed.services.fleet.telemetry import host_capacity, site_capacity
from edgefed.store.alarms import AlarmRepository, Severity
from edgefed.store.inventory import InventoryRepository

log = logging.getLogger("edgefed.fleet.health")

PEER_UNREACHABLE = "peer_unreachable"
SYNC_FAILING = "sync_failing"
SYNC_CONFLICT = "sync_conflict"
CAPACITY = "capacity"
HOST_DOWN = "host_down"
AUTOMATIC_TYPES = (PEER_UNREACHABLE, SYNC_FAILING, SYNC_CONFLICT, CAPACITY, HOST_DOWN)

Wanted = dict[str, tuple[Severity, str]]
FULL_CHECK_EVERY = 5


class HealthMonitor:
    def __init__(self, ctx: SiteContext, *, now: Callable[[], float] = time.monotonic):
        self.ctx = ctx
        self.watch = PeerWatch(ctx, now=now)
        self.sync_rule = FailingSyncRule(
            threshold_seconds=ctx.settings.sync_failing_alarm_seconds, now=now
        )
        self.alarms = AlarmRepository(ctx.store)
        self.peers: dict[str, PeerHealth] = {}
        self.ticks = 0
        self._offline: frozenset[str] | None = None  # as last reconciled

    async def tick(self, *, probe: bool = True, full: bool = True) -> dict[str, PeerHealth]:
        """One evaluation; ``full=False`` (the loop, between full ones) skips the store
        unless the set of offline peers changed."""
        if probe:
            await self.watch.probe(self.watch.quiet_peers())
        self.peers = self.watch.assess()
        down = {n: h.reason for n, h in self.peers.items() if h.status is Condition.OFFLINE}
        if self.ctx.fleet is not None:
            # Shared with the scope router: a '|' skips a site known to be offline at once.
            self.ctx.fleet.down = down
        offline = frozenset(down)
        if full or offline != self._offline:
            await self._check_peers(self.peers)
            self._offline = offline
        if full:
            await self._check_sync()
            await self._check_capacity()
            await self._check_hosts()
        self.ticks += 1
        return self.peers

    async def _reconcile(
        self, *, type: str, wanted: Wanted, owns: Callable[[str], bool] = lambda _: True
    ) -> None:
        """Make the active alarms of ``type`` (among the entities ``owns``) be ``wanted``."""
        now = self.ctx.clock()
        active = {a.entity: a for a in await self.alarms.active_of_type(type)}
        for entity, (severity, reason) in sorted(wanted.items()):
            current = active.get(entity)
            if current is None or current.reason != reason or current.severity != severity.value:
                await self.alarms.raise_alarm(
                    type=type, severity=severity, entity=entity, reason=reason, now=now
                )
        for entity in sorted(set(active) - set(wanted)):
            if owns(entity):
                await self.alarms.clear_condition(type=type, entity=entity, now=now)

    async def _check_peers(self, peers: dict[str, PeerHealth]) -> None:
        # A peer removed from the fleet (revoked) no longer counts as unreachable.
        wanted: Wanted = {
            f"site={name}": (
                Severity.MAJOR,
                f"peer site {name} is unreachable from {self.ctx.name}: "
                + health.reason.split(" (timeout")[0],
            )
            for name, health in peers.items()
            if health.status is Condition.OFFLINE
        }
        await self._reconcile(type=PEER_UNREACHABLE, wanted=wanted)

    async def _check_sync(self) -> None:
        report = read_sync_telemetry(self.ctx)
        if report is None:
            return  # no sync service (or it failed to report): no news, nothing to change
        failing = self.sync_rule.evaluate(report)
        wanted: Wanted = {
            f"site={peer}": (Severity.MAJOR, reason) for peer, reason in failing.items()
        }
        await self._reconcile(type=SYNC_FAILING, wanted=wanted)
        clashing: Wanted = {
            f"site={source}": (Severity.MINOR, reason)
            for source, reason in conflicting_sources(report).items()
        }
        await self._reconcile(type=SYNC_CONFLICT, wanted=clashing)

    async def _check_capacity(self) -> None:
        limit = self.ctx.settings.capacity_alarm_percent
        capacity = site_capacity(await host_capacity(self.ctx))
        mine = f"site={self.ctx.name}.resource="
        wanted: Wanted = {
            f"{mine}{resource}": (
                Severity.MAJOR,
                f"{resource} use is {values['percent']:.0f}% of capacity "
                f"({values['used']:g} of {values['total']:g}), above {limit:g}%",
            )
            for resource, values in capacity.items()
            if values["total"] and values["percent"] > limit
        }
        await self._reconcile(
            type=CAPACITY, wanted=wanted, owns=lambda entity: entity.startswith(mine)
        )

    async def _check_hosts(self) -> None:
        hosts = await InventoryRepository(self.ctx.store).list_hosts()
        wanted: Wanted = {
            f"host={h.hostname}": (
                Severity.CRITICAL,
                f"host {h.hostname} is down: its agent stopped reporting",
            )
            for h in hosts
            if h.availability == "down"
        }
        await self._reconcile(type=HOST_DOWN, wanted=wanted)

    async def run(self) -> None:
        interval = self.ctx.settings.health_interval_seconds
        while True:
            try:
                await self.tick(full=self.ticks % FULL_CHECK_EVERY == 0)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("health evaluation failed")
            await asyncio.sleep(interval)
