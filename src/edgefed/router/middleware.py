"""``ScopeRouter``: pure ASGI middleware that applies ``X-Scope`` to any request.

The service a path belongs to is read from its prefix (``/compute`` -> compute); the
scope's entry for that service says where the request runs:

- no entry, or this site alone: served here, untouched (streamed as usual);
- a version document (``GET /image``, ``/compute/v2.1``): served here whatever the
  scope, so that a client's version discovery works and the call after it carries any
  error of the scope;
- one other site: forwarded in one hop, streamed both ways (forward.py);
- ``A|B``: tried left to right; a transport error, timeout, 5xx or 404 moves on;
- ``A&B``: sent to every site in parallel; reads are merged, writes must succeed
  everywhere or the answer lists every site's status (fanout.py, merge.py).

A forwarded request carries ``X-Edgefed-Forwarded`` so the receiving site serves it
locally (no loops), and keeps its ``X-Scope`` so that the services there make their
own service-to-service calls (a boot fetching its image) where the scope says. The
parsed scope is left in the ASGI scope under ``edgefed.scope`` for those services.
"""

from __future__ import annotations

import functools
import logging

from starlette.types import ASGIApp, Receive, Send
from starlette.types import Scope as AsgiScope

from edgefed.api import remote
from edgefed.api.context import SiteContext
from edgefed.api.faults import fault_response
from edgefed.core.errors import BadRequest, EdgefedError
from edgefed.core.scope import Scope, Site, parse_scope
from edgefed.core.scope_resolve import FleetView, resolve_expr
from edgefed.router.fanout import fan_out
from edgefed.router.forward import stream_to
from edgefed.router.wire import (
    FORWARDED_HEADER,
    SCOPE_HEADER,
    TOKEN_HEADER,
    header,
    is_version_document,
    service_of,
)

log = logging.getLogger("edgefed.router")

SCOPE_KEY = remote.SCOPE_KEY  # where services find the parsed scope (api.remote)
MAX_CACHED_SCOPE = 2048  # bytes: longer scopes are parsed every time


@functools.lru_cache(maxsize=512)
def _parse_cached(raw: bytes) -> Scope:
    return parse_scope(raw.decode("utf-8", errors="replace"))


def parse_header(raw: bytes) -> Scope:
    """Parse an ``X-Scope`` value, remembering the recent ones: a fan-out sends the same
    scope to every site, and clients repeat theirs. Parsed scopes are immutable;
    invalid ones are not remembered."""
    if len(raw) > MAX_CACHED_SCOPE:
        return _parse_cached.__wrapped__(raw)
    return _parse_cached(raw)


class ScopeRouter:
    def __init__(self, app: ASGIApp, *, max_buffer: int = 64 << 20):
        self.app = app
        self.max_buffer = max_buffer

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = header(scope, SCOPE_HEADER)
        if raw is None or is_version_document(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        try:
            parsed = parse_header(raw)
        except BadRequest as exc:
            await _refuse(scope, receive, send, 400, f"Invalid X-Scope header: {exc.message}")
            return
        scope[SCOPE_KEY] = parsed
        service = service_of(scope["path"])
        if header(scope, FORWARDED_HEADER) is not None or service is None or service not in parsed:
            await self.app(scope, receive, send)
            return
        ctx: SiteContext = scope["app"].state.ctx
        try:
            resolved = resolve_expr(parsed[service], _fleet(ctx))
        except BadRequest as exc:
            await _refuse(scope, receive, send, 400, f"Invalid X-Scope header: {exc.message}")
            return
        if isinstance(resolved, Site) and resolved.name == ctx.name:
            await self.app(scope, receive, send)
            return
        refused = _token_refused(scope, ctx)
        if refused is not None:
            await _refuse(scope, receive, send, 401, refused)
            return
        if isinstance(resolved, Site):
            await stream_to(ctx, resolved.name, scope, receive, send)
            return
        await fan_out(self.app, ctx, resolved, scope, receive, send, max_buffer=self.max_buffer)


async def _refuse(scope: AsgiScope, receive: Receive, send: Send, status: int, why: str) -> None:
    await fault_response(scope["path"], status, why)(scope, receive, send)


def _token_refused(scope: AsgiScope, ctx: SiteContext) -> str | None:
    """Why this site refuses the request's token, if it does: a token revoked here (or a
    forged, expired, unknown one) is not sent on to other sites, whatever they know."""
    token = header(scope, TOKEN_HEADER)
    if token is None:
        return None
    try:
        scope["app"].state.authenticator.verify(ctx, token.decode("latin-1"))
    except EdgefedError as exc:
        return exc.message
    return None


def _fleet(ctx: SiteContext) -> FleetView:
    if ctx.fleet is None:
        raise BadRequest("this site has no fleet registry yet")
    return ctx.fleet


__all__ = ["SCOPE_KEY", "ScopeRouter"]
