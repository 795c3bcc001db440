"""What a service contributes to a site app: its router, prefix and lifecycle hooks."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

if TYPE_CHECKING:
    from edgefed.api.context import SiteContext

Hook = Callable[["SiteContext"], Awaitable[Any]]
# A service's long-running work (a loop): the app runs it as a task from after the
# service's ``on_start`` until before its ``on_stop``, and cancels it then.
Job = Callable[["SiteContext"], Coroutine[Any, Any, None]]


def routes_of(*routers: APIRouter) -> list[BaseRoute]:
    """The routes of several routers, in order, to build one router from
    (``APIRouter(routes=…)``) instead of including each.

    A router's own settings (prefix, dependencies, tags, responses…) are already in
    its routes: ``add_api_route`` builds each route with them. Nesting inclusions
    only costs matching time (FastAPI scans an included router's routes to match it,
    then again to handle the request, at every level; docs/bench.md has the version
    and the cost).
    """
    return [route for router in routers for route in router.routes]


# What ``add_api_route`` takes besides the path and the endpoint; an APIRoute keeps each
# under the same name.
ROUTE_SETTINGS = tuple(
    name
    for name in inspect.signature(APIRouter.add_api_route).parameters
    if name not in ("self", "path", "endpoint", "route_class_override")
)


def mount(target: APIRouter, routes: Sequence[BaseRoute], *, prefix: str) -> None:
    """Add ``routes`` to ``target`` under ``prefix`` as routes of its own, not as an
    included router.

    FastAPI keeps an included router as one entry that it matches by scanning the
    router's routes, each through an "effective context" that carries the prefix, and
    it scans them all again to handle the request, so the app's inclusion of a service
    cost routing time on every request (docs/bench.md). A route added under its full path
    is matched once, by its own regular expression. Each route is built again the way
    ``add_api_route`` builds one (the target's default response class, dependency
    overrides and unique ids apply, as they would through an inclusion), with its own
    class (compute's microversion routes). Only FastAPI routes can be mounted.
    """
    for route in routes:
        if not isinstance(route, APIRoute):
            raise ValueError(f"mount: {route!r} is not a FastAPI route")
        settings = {name: getattr(route, name) for name in ROUTE_SETTINGS if hasattr(route, name)}
        target.add_api_route(
            prefix + route.path, route.endpoint, route_class_override=type(route), **settings
        )


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
    catalog: tuple[CatalogEntry, ...] = ()
    on_start: Hook | None = None
    on_stop: Hook | None = None
    tags: tuple[str, ...] = field(default=())
    background: tuple[Job, ...] = ()
