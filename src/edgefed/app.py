"""The composition root: build one site's ASGI app from its settings.

This is the only place that knows every service; the services themselves never
import each other. The lifespan opens the store (applying migrations), loads keys and
revocation events, then starts each service in order (identity first: it bootstraps
the admin) and stops them in reverse.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
from fastapi import APIRouter, FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.routing import BaseRoute

from edgefed import __version__
from edgefed.api import faults
from edgefed.api.auth import Authenticator
from edgefed.api.context import Keyring, SiteContext
from edgefed.api.dispatch import SegmentDispatch
from edgefed.api.metrics import MetricsMiddleware, RequestMetrics
from edgefed.api.middleware import BodyLimit, RequestId
from edgefed.api.peer_transport import PeerTransport
from edgefed.api.responses import Json
from edgefed.api.revocation import RevocationList
from edgefed.api.service import Job, ServiceSpec, mount
from edgefed.core.errors import EdgefedError
from edgefed.core.settings import SiteSettings
from edgefed.core.sitesig import NonceCache
from edgefed.core.tokens import TokenSigner, load_or_create_signing_key
from edgefed.router.middleware import ScopeRouter
from edgefed.services.compute.service import build as build_compute
from edgefed.services.fleet.service import build as build_fleet
from edgefed.services.identity.service import build as build_identity
from edgefed.services.image.service import build as build_image
from edgefed.services.inventory.service import build as build_inventory
from edgefed.services.network.service import build as build_network
from edgefed.services.sites.service import build as build_sites
from edgefed.services.volume.service import build as build_volume
from edgefed.store.engine import Store
from edgefed.store.revocations import RevocationRepository
from edgefed.sync.service import build as build_sync
from edgefed.web.dashboard import router as dashboard_router

log = logging.getLogger("edgefed.app")

# A service that does not stop within this many seconds is left behind (and logged).
STOP_TIMEOUT = 10.0

# Image data streams through these paths; they are not bound by the JSON body limit.
STREAMING_SUFFIXES = ("/file", "/stage", "/disk")


def build_services() -> list[ServiceSpec]:
    return [
        build_sites(),
        build_identity(),
        build_image(),
        build_network(),
        # After image: it reads images through the port the image service fills.
        build_volume(),
        # Before compute: it opens the command channel the qemu driver sends work on.
        build_inventory(),
        build_compute(),
        build_fleet(),
        build_sync(),
    ]


@dataclass(frozen=True)
class Blueprint:
    """What every site app has in common: its services and their routes, mounted under
    their prefixes. Building it analyses every endpoint's signature (FastAPI), most of
    what creating an app costs; nothing in it belongs to one site (a service keeps a
    site's state in the ``SiteContext``), so a process that runs many sites in it (an
    in-process fleet, the test suite) builds one and passes it to each ``create_app``."""

    services: tuple[ServiceSpec, ...]
    routes: tuple[BaseRoute, ...]


def build_blueprint() -> Blueprint:
    services = tuple(build_services())
    # Routes are mounted as the app's own router would mount them: its default response
    # class; no dependency overrides (the app's would be bound to the first app).
    router = APIRouter(default_response_class=Json)
    for spec in services:
        mount(router, spec.router.routes, prefix=spec.prefix)
    mount(router, dashboard_router.routes, prefix="")
    return Blueprint(services=services, routes=tuple(router.routes))


def _run(spec: ServiceSpec, job: Job, ctx: SiteContext) -> asyncio.Task[None]:
    return asyncio.create_task(job(ctx), name=f"{spec.name}:{job.__name__}")


async def _stop(spec: ServiceSpec, tasks: list[asyncio.Task[None]], ctx: SiteContext) -> None:
    """Cancel the service's background work, then run its ``on_stop``; a service that
    takes over ``STOP_TIMEOUT`` or fails is logged and left behind."""
    try:
        async with asyncio.timeout(STOP_TIMEOUT):
            for task in tasks:
                task.cancel()
            for task, outcome in zip(
                tasks, await asyncio.gather(*tasks, return_exceptions=True), strict=True
            ):
                if isinstance(outcome, Exception):
                    log.error("%s had failed", task.get_name(), exc_info=outcome)
            if spec.on_stop is not None:
                await spec.on_stop(ctx)
    except TimeoutError:
        log.error("stopping %s took over %ss; going on", spec.name, STOP_TIMEOUT)
    except Exception:
        log.exception("stopping %s failed", spec.name)


def create_app(
    settings: SiteSettings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], float] = time.time,
    on_ready: Callable[[SiteContext], None] | None = None,
    blueprint: Blueprint | None = None,
) -> FastAPI:
    """A site app. ``transport`` replaces the network for inter-site calls (tests);
    ``blueprint`` is the services and routes to use, built anew when not given."""
    blueprint = blueprint or build_blueprint()
    services = blueprint.services
    metrics = RequestMetrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        store = await Store.open(
            settings.effective_database_url, sqlite_synchronous=settings.sqlite_synchronous
        )
        signing_key = load_or_create_signing_key(settings.data_dir / "keys" / "signing.pem")
        signer = TokenSigner(signing_key, kid=settings.name)
        keyring = Keyring(keys={settings.name: signer.public_key})
        events = await RevocationRepository(store).all_since(clock() - 2 * 86400)
        # The one inter-site client, a pool per peer (api/peer_transport.py).
        peer_transport = transport or PeerTransport(
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
            pins=keyring.tls_pins,  # https peers: pinned to their registry keys (api/tls.py)
        )
        http = httpx.AsyncClient(transport=peer_transport, timeout=httpx.Timeout(30.0, connect=5.0))
        ctx = SiteContext(
            settings=settings,
            store=store,
            signer=signer,
            keyring=keyring,
            revocations=RevocationList(
                events,
                self_name=settings.name,
                max_staleness=settings.revocation_staleness_seconds,
                clock=clock,
            ),
            http=http,
            peer_transport=peer_transport,
            clock=clock,
            catalog_entries=tuple(e for spec in services for e in spec.catalog),
            nonces=NonceCache(not_before=clock()),
            request_metrics=metrics,
        )
        app.state.ctx = ctx
        started: list[tuple[ServiceSpec, list[asyncio.Task[None]]]] = []
        try:
            for spec in services:
                if spec.on_start is not None:
                    await spec.on_start(ctx)
                started.append((spec, [_run(spec, job, ctx) for job in spec.background]))
            log.info("site %s ready at %s", settings.name, ctx.public_url)
            if on_ready is not None:
                on_ready(ctx)
            yield
        finally:
            for spec, tasks in reversed(started):
                await _stop(spec, tasks, ctx)
            await http.aclose()
            try:
                async with asyncio.timeout(STOP_TIMEOUT):
                    await store.close()
            except TimeoutError:
                log.error("closing the store took over %ss", STOP_TIMEOUT)

    app = FastAPI(
        title=f"edgefed site {settings.name}",
        version=__version__,
        lifespan=lifespan,
        default_response_class=Json,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        # Metrics are our own (Prometheus, /metrics). FastAPI's native OpenTelemetry
        # would look up the global providers on every request to learn it is unused.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.authenticator = Authenticator()
    app.add_exception_handler(EdgefedError, faults.handle_edgefed_error)
    app.add_exception_handler(RequestValidationError, faults.handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, faults.handle_http_exception)
    app.add_exception_handler(Exception, faults.handle_unexpected)
    dispatch = SegmentDispatch(app.router)
    app.router.routes.extend(blueprint.routes)

    @app.get("/", include_in_schema=False)
    async def root(request: Request) -> Json:
        base = str(request.base_url).rstrip("/")
        return Json(
            {
                "site": settings.name,
                "version": __version__,
                "services": {e.type: f"{base}{e.path}" for spec in services for e in spec.catalog},
            }
        )

    # The last added runs first: RequestId, then BodyLimit, then ScopeRouter, so the body
    # limits apply before the router buffers (fan-out) or forwards anything.
    app.add_middleware(ScopeRouter)
    app.add_middleware(
        BodyLimit, max_bytes=settings.max_request_body_bytes, streaming_suffixes=STREAMING_SUFFIXES
    )
    app.add_middleware(RequestId)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    dispatch.install()
    return app
