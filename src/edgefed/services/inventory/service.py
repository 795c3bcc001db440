"""The hosts inventory service: hosts, personalities, host agents (``/edge/v1/hosts``).

At start it opens the command channel to the host agents (``ctx.host_commands``,
api/hostcommands.py) and, for an all-in-one site (the qemu driver with
``local_agent``), prepares this machine's host: added, unlocked, and a one-time
enrollment token for its agent (local_agent.py).
"""

from __future__ import annotations

from edgefed.api.context import SiteContext
from edgefed.api.hostcommands import HostCommandQueue
from edgefed.api.service import ServiceSpec
from edgefed.services.inventory import local_agent, monitor
from edgefed.services.inventory.routes import router


async def on_start(ctx: SiteContext) -> None:
    ctx.host_commands = HostCommandQueue(ctx.store, clock=ctx.clock)
    if ctx.settings.runs_local_agent:
        await local_agent.prepare(ctx)


async def on_stop(ctx: SiteContext) -> None:
    ctx.host_commands = None


def build() -> ServiceSpec:
    return ServiceSpec(
        name="inventory",
        prefix="/edge/v1/hosts",
        router=router,
        on_start=on_start,
        on_stop=on_stop,
        background=(monitor.sweep_silent_hosts,),
        tags=("inventory",),
    )
