"""The heartbeat monitor: marks hosts down when their agents fall silent.

A background task sweeps a few times per timeout, so a host is marked down at most
about a quarter of the timeout after its last heartbeat expired. The sweep itself
(``HostInventory.mark_silent_hosts_down``) reads the site clock, so tests drive it with
a fake clock instead of waiting. The app runs ``sweep_silent_hosts`` from the service's
start to its stop (``ServiceSpec.background``). A host marked down has its open
commands failed with the reason (api/hostcommands.py), and so has any command past its
deadline that no one awaits any more.
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
    timeout = ctx.settings.host_heartbeat_timeout_seconds
    interval = sweep_interval(timeout)
    while True:
        try:
            down = await HostInventory(ctx).mark_silent_hosts_down()
            queue = ctx.host_commands
            if queue is not None:
                # The work a silent agent was given will not be done: its servers get a
                # fault saying so now, not at each command's deadline.
                for host in down:
                    await queue.fail_host(
                        host.hostname,
                        reason=f"host {host.hostname} is down: its agent sent no heartbeat "
                        f"for more than {timeout:g} s",
                    )
                await queue.expire()
        except Exception:
            log.exception("heartbeat sweep failed; retrying")
        await asyncio.sleep(interval)
