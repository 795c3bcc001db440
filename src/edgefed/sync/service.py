"""The sync engine as a site component: its routes under /edge/v1 and its lifecycle.

The engine is the service's private state (``ctx.slots``); its telemetry is what the
service offers fleet operations (the ``ctx.sync_status`` port).
"""

from __future__ import annotations

from edgefed.api.context import SiteContext
from edgefed.api.service import ServiceSpec
from edgefed.store.sync import SyncRepository
from edgefed.sync.routes import router
from edgefed.sync.state import SyncEngine


async def on_start(ctx: SiteContext) -> None:
    engine = ctx.slots.put(SyncEngine(ctx, SyncRepository(ctx.store)))
    await engine.start()
    ctx.sync_status = engine.telemetry


async def on_stop(ctx: SiteContext) -> None:
    ctx.sync_status = None
    engine = ctx.slots.pop(SyncEngine)
    if engine is not None:
        await engine.stop()


def build() -> ServiceSpec:
    return ServiceSpec(
        name="sync", prefix="/edge/v1", router=router, on_start=on_start, on_stop=on_stop
    )
