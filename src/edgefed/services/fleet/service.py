"""The fleet operations service: alarms, telemetry, health, aggregation, remote control.

Its background work is the health monitor (``monitor.HealthMonitor``), which the app
runs from the site's start to its stop. Routes carry full paths (``/edge/v1/...`` and
``/metrics``), hence the empty prefix.
"""

from __future__ import annotations

from fastapi import APIRouter

from edgefed.api.context import SiteContext
from edgefed.api.service import ServiceSpec, routes_of
from edgefed.services.fleet import alarms, run, views
from edgefed.services.fleet.monitor import HealthMonitor


async def on_start(ctx: SiteContext) -> None:
    ctx.slots.put(HealthMonitor(ctx))


async def watch_health(ctx: SiteContext) -> None:
    await ctx.slots.require(HealthMonitor).run()


def build() -> ServiceSpec:
    router = APIRouter(routes=routes_of(views.router, run.router, alarms.router))
    return ServiceSpec(
        name="fleet", prefix="", router=router, on_start=on_start, background=(watch_health,)
    )
