"""The compute service (Nova v2.1 under ``/compute``): routers, start and stop.

At start the service seeds the default flavors, builds the driver and the scheduler,
and recovers the operations a previous stop (or ``kill -9``) interrupted; at stop it
cancels the running operations (their intent stays in the store for the next start).
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request

from edgefed.api.context import SiteContext, site_context
from edgefed.api.responses import Json
from edgefed.api.service import CatalogEntry, ServiceSpec, routes_of
from edgefed.drivers import load_driver
from edgefed.services.compute import (
    actions,
    drain,
    flavors,
    hypervisors,
    keypairs,
    quotas,
    relocation_in,
    relocations,
    servers,
    volume_attachments,
)
from edgefed.services.compute.guest_metrics import GuestMetricsCache
from edgefed.services.compute.lifecycle import ServerLifecycle
from edgefed.services.compute.microversion import (
    MicroversionRoute,
    legacy_document,
    version_document,
)
from edgefed.services.compute.moves import Moves
from edgefed.services.compute.relocation_out import Relocator
from edgefed.services.compute.remote_volumes import release_later
from edgefed.services.compute.scheduler import (
    InventoryHostSource,
    Ratios,
    Scheduler,
    SettingsHostSource,
)
from edgefed.services.compute.state import ComputeState
from edgefed.services.compute.volume_ends import end_of
from edgefed.store.compute import (
    FlavorRepository,
    KeypairRepository,
    QuotaRepository,
    ServerRepository,
)
from edgefed.store.image import ImageRepository
from edgefed.store.inventory import InventoryRepository
from edgefed.store.network import NetworkRepository


def _base(request: Request) -> str:
    return f"{site_context(request).public_url}/compute"


async def versions(request: Request) -> Json:
    base = _base(request)
    return Json({"versions": [legacy_document(base), version_document(base)]})


async def version_v21(request: Request) -> Json:
    return Json({"version": version_document(_base(request))})


async def on_start(ctx: SiteContext) -> None:
    settings = ctx.settings
    driver = load_driver(settings, store=ctx.store, queue=ctx.host_commands)
    scheduler = Scheduler(
        source=InventoryHostSource(InventoryRepository(ctx.store), SettingsHostSource(settings)),
        ratios=Ratios(
            cpu=settings.cpu_allocation_ratio,
            ram=settings.ram_allocation_ratio,
            disk=settings.disk_allocation_ratio,
        ),
    )
    server_repo = ServerRepository(ctx.store)
    network_repo = NetworkRepository(ctx.store)
    image_repo = ImageRepository(ctx.store)
    lifecycle = ServerLifecycle(
        servers=server_repo,
        networks=network_repo,
        images=image_repo,
        driver=driver,
        scheduler=scheduler,
        data_dir=settings.data_dir,
        max_image_bytes=settings.max_image_bytes,
        volume_end=lambda mapping: end_of(ctx, mapping),
    )
    driver.watch_power(lifecycle.power_changed)
    state = ComputeState(
        ctx=ctx,
        driver=driver,
        scheduler=scheduler,
        lifecycle=lifecycle,
        flavors=FlavorRepository(ctx.store),
        servers=server_repo,
        keypairs=KeypairRepository(ctx.store),
        quotas=QuotaRepository(ctx.store),
        networks=network_repo,
        images=image_repo,
    )
    ctx.slots.put(state)
    ctx.guest_metrics = GuestMetricsCache(servers=server_repo, driver=driver)
    await flavors.seed_default_flavors(state.flavors)
    lifecycle.resume_move = Moves(state).start
    await lifecycle.recover()
    relocator = Relocator(state)
    ctx.slots.put(relocator)
    await relocator.resume()


async def on_stop(ctx: SiteContext) -> None:
    if isinstance(ctx.guest_metrics, GuestMetricsCache):
        await ctx.guest_metrics.close()
    ctx.guest_metrics = None
    relocator = ctx.slots.get(Relocator)
    if relocator is not None:
        await relocator.stop()
    state = ctx.slots.get(ComputeState)
    if state is not None:
        await state.lifecycle.stop()
        await state.driver.close()


def build() -> ServiceSpec:
    # A fresh root router per app: it owns the bare ``/compute`` path (an empty path is
    # only allowed on the router mounted with the prefix).
    router = APIRouter()
    for path in ("", "/"):
        router.add_api_route(path, versions, methods=["GET"], include_in_schema=False)
    v21 = APIRouter(route_class=MicroversionRoute)
    for path in ("/v2.1", "/v2.1/"):
        v21.add_api_route(path, version_v21, methods=["GET"], include_in_schema=False)
    modules = (
        flavors,
        servers,
        actions,
        keypairs,
        quotas,
        hypervisors,
        volume_attachments,
        relocation_in,
        relocations,
        drain,
    )
    router = APIRouter(routes=routes_of(router, v21, *(m.router for m in modules)))
    return ServiceSpec(
        name="compute",
        prefix="/compute",
        router=router,
        catalog=(CatalogEntry(type="compute", name="nova", path="/compute/v2.1"),),
        on_start=on_start,
        on_stop=on_stop,
        background=(release_later,),
    )
