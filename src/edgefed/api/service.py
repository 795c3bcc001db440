"""What a service contributes to a site app: its router, prefix and lifecycle hooks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from starlette.routing import BaseRoute

if TYPE_CHECKING:
    from edgefed.api.context import SiteContext

Hook = Callable[["SiteContext"], Awaitable[Any]]


def routes_of(*routers: APIRouter) -> list[BaseRoute]:
    """The routes of plain routers, to build one router from (``APIRouter(routes=…)``)
    instead of including each.

    FastAPI (0.165) matches an included router by scanning its routes, then scans them
    again to handle the request, and does so at every level of inclusion: a service
    whose routes sat two inclusions deep matched ~28 routes for one request, ~80 µs of
    a ~350 µs forwarded image list. Only routers without router-level settings qualify
    (what ``include_router`` would have added: prefix, dependencies, tags, responses,
    callbacks, a default response class); anything else is refused here.
    """
    routes: list[BaseRoute] = []
    for router in routers:
        settings = {
            "prefix": router.prefix,
            "dependencies": router.dependencies,
            "tags": router.tags,
            "responses": router.responses,
            "callbacks": router.callbacks,
        }
        extra = [name for name, value in settings.items() if value]
        if extra or router.deprecated or not router.include_in_schema:
            raise ValueError(f"routes_of: a router with settings of its own ({extra})")
        routes.extend(router.routes)
    return routes


@dataclass(frozen=True)
class CatalogEntry:
    """One service in the Keystone catalog: ``url`` is a path below the site's public URL."""

    type: str
    name: str
    path: str


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    prefix: str
    router: APIRouter
    # Included under ``prefix`` before ``router``, each on its own: FastAPI walks every
    # router nested in an included router each time it matches a request against it,
    # so a hot path (token validation) matches faster in a small router of its own.
    hot_routers: tuple[APIRouter, ...] = ()
    catalog: tuple[CatalogEntry, ...] = ()
    on_start: Hook | None = None
    on_stop: Hook | None = None
    tags: tuple[str, ...] = field(default=())
