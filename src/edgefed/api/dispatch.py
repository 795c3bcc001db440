"""Try a request only against the routes that can serve its first path segment.

A router matches a request by trying its routes in order until one matches. A site has
every service's routes in one app, so a request to ``/identity/…`` was tried
against the routes of the services registered before identity first. This index
groups the routes by the first segment of their path (``identity``, ``compute``,
``edge``…) and sends each request to a router holding only its group.

Nothing else changes: the app keeps every route (``/openapi.json``, ``url_path_for``,
lifespan), each group keeps the original order, and a route whose first segment is not
known (an included router, a path starting with a parameter) is in
every group. The first route that matches is therefore the one a scan of the whole
list would find, and a miss takes the same 405/redirect/404 path as before. Routes
added to the app later are picked up: the index is rebuilt when the route list changes
length.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send

# The group of routes whose first segment is unknown: they are tried for every path.
_ANY = None


def first_segment(path: str) -> str | None:
    """``/identity/v3/…`` → ``identity``; None when the segment holds a parameter."""
    if not path.startswith("/"):
        return _ANY
    segment = path[1:].partition("/")[0]
    return _ANY if "{" in segment else segment


class SegmentDispatch:
    """The router's dispatch: picks the group of routes by the path's first segment."""

    def __init__(self, router: APIRouter) -> None:
        self.router = router
        self._full = router.app
        self._groups: dict[str, APIRouter] = {}
        self._others = self._group([])
        self._indexed = -1

    def install(self) -> None:
        """Become the router's dispatch (only a router without router-level middleware)."""
        if self.router.middleware_stack != self.router.app:
            return
        self._reindex()
        self.router.middleware_stack = self

    def _segment_of(self, route: BaseRoute) -> str | None:
        path = getattr(route, "path", None)
        return first_segment(path) if isinstance(path, str) else _ANY

    def _group(self, routes: list[BaseRoute]) -> APIRouter:
        return APIRouter(
            routes=routes,
            redirect_slashes=self.router.redirect_slashes,
            default=self.router.default,
        )

    def _reindex(self) -> None:
        routes = list(self.router.routes)
        keyed = [(self._segment_of(route), route) for route in routes]
        segments = {segment for segment, _ in keyed if segment is not _ANY}
        self._groups = {
            segment: self._group([r for s, r in keyed if s == segment or s is _ANY])
            for segment in segments
        }
        self._others = self._group([r for s, r in keyed if s is _ANY])
        self._indexed = len(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self._full(scope, receive, send)  # lifespan
            return
        if len(self.router.routes) != self._indexed:
            self._reindex()
        path: str = scope["path"]
        root_path: str = scope.get("root_path", "")
        if root_path and path.startswith(root_path):
            path = path[len(root_path) :]
        segment = path[1:].partition("/")[0]
        group = self._groups.get(segment, self._others)
        scope.setdefault("router", self.router)  # url_for sees every route
        await group.app(scope, receive, send)
