"""The sync engine as a site component: its routes under /edge/v1 and its lifecycle."""

from __future__ import annotations

from edgefed.api.context import SiteContext
from edgefed.api.service import ServiceSpec
from edgefed.store.sync import SyncRepository
from edgefed.sync.routes import router
from edgefed.sync.state import SERVICE_KEY, SyncEngine
from edgefed.sync.telemetry import TELEMETRY_KEY


async def on_start(ctx: SiteContext) -> None:
    engine = SyncEngine(ctx, SyncRepository(ctx.store))
    ctx.services[SERVICE_KEY] = engine
    await engine.start()
    ctx.services[TELEMETRY_KEY] = engine.telemetry


async def on_stop(ctx: SiteContext) -> None:
    ctx.services.pop(TELEMETRY_KEY, None)
    engine: SyncEngine | None = ctx.services.pop(SERVICE_KEY, None)
    if engine is not None:
        await engine.stop()


def build() -> ServiceSpec:
    return ServiceSpec(
        name="sync", prefix="/edge/v1", router=router, on_start=on_start, on_stop=on_stop
    )
