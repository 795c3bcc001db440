"""The fleet operations service: alarms, telemetry, health, aggregation, remote control.

Its background task is the health monitor (``monitor.HealthMonitor``), started with
the site and cancelled when it stops. Routes carry full paths (``/edge/v1/...`` and
``/metrics``), hence the empty prefix.
"""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter

from edgefed.api.context import SiteContext
from edgefed.api.service import ServiceSpec, routes_of
from edgefed.services.fleet import alarms, run, views
from edgefed.services.fleet.monitor import HealthMonitor

TASK_KEY = "fleet.health"


async def on_start(ctx: SiteContext) -> None:
    monitor = HealthMonitor(ctx)
    ctx.services[views.MONITOR_KEY] = monitor
    ctx.services[TASK_KEY] = asyncio.create_task(monitor.run(), name="fleet-health")


async def on_stop(ctx: SiteContext) -> None:
    task: asyncio.Task[None] | None = ctx.services.pop(TASK_KEY, None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def build() -> ServiceSpec:
    router = APIRouter(routes=routes_of(views.router, run.router, alarms.router))
    return ServiceSpec(name="fleet", prefix="", router=router, on_start=on_start, on_stop=on_stop)
