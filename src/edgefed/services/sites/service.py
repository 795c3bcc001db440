"""The sites service: ServiceSpec and lifecycle (load registry, join, gossip)."""

from __future__ import annotations

import contextlib
import logging

from edgefed.api.context import SiteContext
from edgefed.api.service import ServiceSpec
from edgefed.core.errors import EdgefedError
from edgefed.services.sites.enrollment import EnrollmentToken
from edgefed.services.sites.gossip import run_gossip
from edgefed.services.sites.registry import Registry
from edgefed.services.sites.routes import router

log = logging.getLogger("edgefed.fleet")

CAPABILITIES = ("identity", "image", "compute", "network", "sync")


async def on_start(ctx: SiteContext) -> None:
    registry = Registry(ctx, capabilities=CAPABILITIES)
    await registry.load()
    ctx.fleet = registry.view
    ctx.slots.put(registry)
    token_text = ctx.settings.join_token
    if token_text:
        token = EnrollmentToken.decode(token_text)
        if token.issuer not in registry.view.entries:
            # Try once before reporting ready; the gossip task keeps trying after that.
            with contextlib.suppress(EdgefedError):
                await registry.join_with(token)


async def gossip(ctx: SiteContext) -> None:
    """The background work: join (if not yet done) and gossip with the fleet."""
    await run_gossip(ctx.slots.require(Registry))


async def on_stop(ctx: SiteContext) -> None:
    registry = ctx.slots.get(Registry)
    if registry is not None:
        await registry.feed.stop()


def build() -> ServiceSpec:
    return ServiceSpec(
        name="sites",
        prefix="/edge/v1",
        router=router,
        on_start=on_start,
        on_stop=on_stop,
        background=(gossip,),
    )
