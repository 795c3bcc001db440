"""The heartbeat monitor: marks hosts down when their agents fall silent.

A background task sweeps a few times per timeout, so a host is marked down at most
about a quarter of the timeout after its last heartbeat expired. The sweep itself
(``HostInventory.mark_silent_hosts_down``) reads the site clock, so tests drive it with
a fake clock instead of waiting. The app runs ``sweep_silent_hosts`` from the service's
start to its stop (``ServiceSpec.background``).
"""

from __future__ import annotations

import asyncio
import logging

from edgefed.api.context import SiteContext
from edgefed.services.inventory.operations import HostInventory

log = logging.getLogger("edgefed.inventory")


def sweep_interval(timeout: float) -> float:
    return min(max(timeout / 4, 0.05), 5.0)


async def sweep_silent_hosts(ctx: SiteContext) -> None:
    interval = sweep_interval(ctx.settings.host_heartbeat_timeout_seconds)
    while True:
        try:
            await HostInventory(ctx).mark_silent_hosts_down()
        except Exception:
            log.exception("heartbeat sweep failed; retrying")
        await asyncio.sleep(interval)
