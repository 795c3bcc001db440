"""The site's own watchman: every ``health_interval_seconds`` it probes quiet peers,
assesses every peer, and raises or clears its automatic alarms.

Alarms are raised idempotently (one active alarm per type and entity) and cleared
when the condition goes away, so the loop can run every second without noise:

- ``peer_unreachable`` (major, entity ``site=<peer>``): a peer is offline;
- ``capacity`` (major, entity ``site=<me>.resource=<r>``): use of vCPUs, RAM or disk
  above ``capacity_alarm_percent``;
- ``host_down`` (critical, entity ``host=<hostname>``): the hosts inventory marked a
  host down (its agent went silent).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from edgefed.api.context import SiteContext
from edgefed.services.fleet.health import Condition, PeerHealth, PeerWatch
from edgefed.services.fleet.telemetry import host_capacity, site_capacity
from edgefed.store.alarms import AlarmRepository, Severity
from edgefed.store.inventory import InventoryRepository

log = logging.getLogger("edgefed.fleet.health")

PEER_UNREACHABLE = "peer_unreachable"
CAPACITY = "capacity"
HOST_DOWN = "host_down"
AUTOMATIC_TYPES = (PEER_UNREACHABLE, CAPACITY, HOST_DOWN)


class HealthMonitor:
    def __init__(self, ctx: SiteContext, *, now: Callable[[], float] = time.monotonic):
        self.ctx = ctx
        self.watch = PeerWatch(ctx, now=now)
        self.alarms = AlarmRepository(ctx.store)
        self.peers: dict[str, PeerHealth] = {}
        self.ticks = 0

    async def tick(self, *, probe: bool = True) -> dict[str, PeerHealth]:
        if probe:
            await self.watch.probe(self.watch.quiet_peers())
        self.peers = self.watch.assess()
        if self.ctx.fleet is not None:
            # Shared with the scope router: a '|' skips a site known to be offline at once.
            self.ctx.fleet.down = {
                name: h.reason for name, h in self.peers.items() if h.status is Condition.OFFLINE
            }
        await self._reconcile_peers(self.peers)
        await self._check_capacity()
        await self._check_hosts()
        self.ticks += 1
        return self.peers

    async def _reconcile_peers(self, peers: dict[str, PeerHealth]) -> None:
        now = self.ctx.clock()
        for name, health in peers.items():
            entity = f"site={name}"
            if health.status is Condition.OFFLINE:
                await self.alarms.raise_alarm(
                    type=PEER_UNREACHABLE,
                    severity=Severity.MAJOR,
                    entity=entity,
                    reason=f"peer site {name} is unreachable from {self.ctx.name}: "
                    + health.reason.split(" (timeout")[0],
                    now=now,
                )
            else:
                await self.alarms.clear_condition(type=PEER_UNREACHABLE, entity=entity, now=now)
        # A peer removed from the fleet (revoked) no longer counts as unreachable.
        for alarm in await self.alarms.active_of_type(PEER_UNREACHABLE):
            if alarm.entity.removeprefix("site=") not in peers:
                await self.alarms.clear_condition(
                    type=PEER_UNREACHABLE, entity=alarm.entity, now=now
                )

    async def _check_capacity(self) -> None:
        now = self.ctx.clock()
        limit = self.ctx.settings.capacity_alarm_percent
        capacity = site_capacity(await host_capacity(self.ctx))
        for resource, values in capacity.items():
            entity = f"site={self.ctx.name}.resource={resource}"
            if values["total"] and values["percent"] > limit:
                await self.alarms.raise_alarm(
                    type=CAPACITY,
                    severity=Severity.MAJOR,
                    entity=entity,
                    reason=f"{resource} use is {values['percent']:.0f}% of capacity "
                    f"({values['used']:g} of {values['total']:g}), above {limit:g}%",
                    now=now,
                )
            else:
                await self.alarms.clear_condition(type=CAPACITY, entity=entity, now=now)

    async def _check_hosts(self) -> None:
        now = self.ctx.clock()
        hosts = await InventoryRepository(self.ctx.store).list_hosts()
        down = {h.hostname for h in hosts if h.availability == "down"}
        for hostname in sorted(down):
            await self.alarms.raise_alarm(
                type=HOST_DOWN,
                severity=Severity.CRITICAL,
                entity=f"host={hostname}",
                reason=f"host {hostname} is down: its agent stopped reporting",
                now=now,
            )
        for alarm in await self.alarms.active_of_type(HOST_DOWN):
            if alarm.entity.removeprefix("host=") not in down:
                await self.alarms.clear_condition(type=HOST_DOWN, entity=alarm.entity, now=now)

    async def run(self) -> None:
        interval = self.ctx.settings.health_interval_seconds
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("health evaluation failed")
            await asyncio.sleep(interval)
