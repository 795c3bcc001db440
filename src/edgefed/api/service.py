"""What a service contributes to a site app: its router, prefix and lifecycle hooks."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, compile_path, get_name

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


_ROUTE_DEFAULTS = {
    name: parameter.default
    for name, parameter in inspect.signature(APIRoute.__init__).parameters.items()
    if parameter.default is not inspect.Parameter.empty
}


def _is_default(name: str, value: Any) -> bool:
    """Whether APIRoute takes ``value`` for setting ``name`` as it takes no value (an
    empty list or dict where the default is None: APIRoute makes those empty)."""
    if name not in _ROUTE_DEFAULTS:
        return False
    default = _ROUTE_DEFAULTS[name]
    if default is None and isinstance(value, list | dict) and not value:
        return True
    return type(value) is type(default) and bool(value == default)


class DeclaredRoute(APIRoute):
    """A route as its router declared it (path, endpoint, settings), not yet built.

    Building a FastAPI route analyses its endpoint: each parameter, body and response
    becomes a field with a pydantic validator of its own. A service's routers only
    hold routes for ``mount`` to build again under the service's prefix, and those are
    the app's; built twice (three times for the volume API's), the routes cost an idle
    site ≈ 2.5 MiB it never used (docs/bench.md, ``footprint``). A router made with
    ``APIRouter(route_class=DeclaredRoute)`` keeps what ``add_api_route`` passed, and
    ``mount`` builds each route once, as ``built_class``.

    A declared route is still a route: anything asked of it that it does not hold yet
    (its ``dependant``, ``app``…, as when a test includes the router in an app as it
    is, or the app's first request to it) builds it in place first, with the settings
    it was declared with, and it is then of its ``built_class`` exactly.
    ``declared(cls)`` is the same for a route class of a service's own.
    """

    built_class: ClassVar[type[APIRoute]] = APIRoute

    def __init__(self, path: str, endpoint: Callable[..., Any], **settings: Any) -> None:
        self.path = path
        self.endpoint = endpoint
        # Only what differs from APIRoute's defaults (a router passes all ~25 settings).
        self.declared = {k: v for k, v in settings.items() if not _is_default(k, v)}

    def matchable(self) -> None:
        """Hold what matching a request or a URL reads (``matches``, ``url_path_for``),
        as building would set it, so that only the route that serves a request is built."""
        name = self.declared.get("name")
        self.name = get_name(self.endpoint) if name is None else name
        self.path_regex, self.path_format, self.param_convertors = compile_path(self.path)
        methods = self.declared.get("methods")
        self.methods = {method.upper() for method in (["GET"] if methods is None else methods)}

    def __getattr__(self, name: str) -> Any:
        # Only called for an attribute not set: once built, every attribute is.
        settings = self.__dict__.pop("declared", None)
        if settings is None:
            raise AttributeError(name)
        before = dict(self.__dict__, declared=settings)
        try:
            self.built_class.__init__(self, self.path, self.endpoint, **settings)
        except BaseException:
            vars(self).clear()  # half built: as declared again, the next use fails the same
            vars(self).update(before)
            raise
        self.__class__ = self.built_class  # type: ignore[assignment]  # the same layout
        return getattr(self, name)


_DECLARED: dict[type[APIRoute], type[DeclaredRoute]] = {APIRoute: DeclaredRoute}


def declared(route_class: type[APIRoute]) -> type[DeclaredRoute]:
    """A ``DeclaredRoute`` class that ``mount`` builds as ``route_class`` (one per class)."""
    if route_class not in _DECLARED:
        name = f"Declared{route_class.__name__}"
        _DECLARED[route_class] = type(
            name, (DeclaredRoute, route_class), {"built_class": route_class}
        )
    return _DECLARED[route_class]


def route_settings(route: APIRoute) -> dict[str, Any]:
    """What ``add_api_route`` takes to build ``route`` again, besides path and endpoint."""
    settings = route.__dict__.get("declared")
    if settings is not None:  # a declared route not built: as it was declared
        return {name: value for name, value in settings.items() if name in ROUTE_SETTINGS}
    return {name: getattr(route, name) for name in ROUTE_SETTINGS if hasattr(route, name)}


def mount(target: APIRouter, routes: Sequence[BaseRoute], *, prefix: str) -> None:
    """Add ``routes`` to ``target`` under ``prefix`` as routes of its own, not as an
    included router.

    FastAPI keeps an included router as one entry that it matches by scanning the
    router's routes, each through an "effective context" that carries the prefix, and
    it scans them all again to handle the request, so the app's inclusion of a service
    cost routing time on every request (docs/bench.md). A route added under its full path
    is matched once, by its own regular expression. Each route is built (again, unless
    it was only declared: ``DeclaredRoute``) the way ``add_api_route`` builds one (the
    target's default response class, dependency overrides and unique ids apply, as they
    would through an inclusion), with its own class (compute's microversion routes).
    Only FastAPI routes can be mounted.

    Each is added declared and matchable (``DeclaredRoute.matchable``) and built when it
    is first asked for more: by the first request it serves, or ``/openapi.json``. An
    idle site serves a few of its ≈ 350 routes, and a built one costs ≈ 7 KiB (its
    fields, a pydantic validator per parameter) (docs/bench.md, ``footprint``).
    """
    for route in routes:
        if not isinstance(route, APIRoute):
            raise ValueError(f"mount: {route!r} is not a FastAPI route")
        route_class: type[APIRoute] = getattr(type(route), "built_class", type(route))
        target.add_api_route(
            prefix + route.path,
            route.endpoint,
            route_class_override=declared(route_class),
            **route_settings(route),
        )
        added = target.routes[-1]
        assert isinstance(added, DeclaredRoute)
        added.matchable()


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
