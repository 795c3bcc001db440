"""``ScopeRouter``: pure ASGI middleware that applies ``X-Scope`` to any request.

The service a path belongs to is read from its prefix (``/compute`` → compute); the
scope's entry for that service says where the request runs:

- no entry, or this site alone: served here, untouched (streamed as usual);
- one other site: forwarded in one hop, streamed both ways;
- ``A|B``: tried left to right; a transport error, timeout, 5xx or 404 moves on;
- ``A&B``: sent to every site in parallel; reads are merged, writes must succeed
  everywhere or the answer lists every site's status (``router.merge``).

A forwarded request carries ``X-Edgefed-Forwarded`` so the receiving site serves it
locally (no loops), and keeps its ``X-Scope`` so that the services there make their
own service-to-service calls (a boot fetching its image) where the scope says. The
parsed scope is left in the ASGI scope under ``edgefed.scope`` for those services.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import httpx
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as AsgiScope

from edgefed.api import remote
from edgefed.api.context import SiteContext
from edgefed.api.faults import fault_response
from edgefed.api.http1 import Body
from edgefed.api.peer_transport import PeerTransport
from edgefed.core.errors import BadRequest, EdgefedError
from edgefed.core.scope import Scope, Site, parse_scope
from edgefed.core.scope_eval import evaluate_resolved
from edgefed.core.scope_resolve import ResolvedExpr, resolve_expr
from edgefed.router.merge import SiteAnswer, failure, merge_success

log = logging.getLogger("edgefed.router")

SCOPE_HEADER = b"x-scope"
FORWARDED_HEADER = remote.FORWARDED_HEADER.lower().encode()
SITE_HEADER = b"x-edgefed-site"
TOKEN_HEADER = b"x-auth-token"
SCOPE_KEY = remote.SCOPE_KEY  # where services find the parsed scope (api.remote)

SERVICE_PREFIXES = (
    ("/compute", "compute"),
    ("/image", "image"),
    ("/network", "network"),
    ("/volume", "volume"),
    ("/identity", "identity"),
    ("/placement", "placement"),
    (
        "/edge",
        "fleet",
    ),  # edgefed's own API: alarms, telemetry, hosts… (aggregation, remote control)
)
HOP_BY_HOP = {
    b"connection",
    b"keep-alive",
    b"proxy-authenticate",
    b"proxy-authorization",
    b"te",
    b"trailers",
    b"transfer-encoding",
    b"upgrade",
    b"host",
    b"content-length",
}
READ_METHODS = {"GET", "HEAD", "OPTIONS"}
MAX_PARALLEL = 64
MAX_CACHED_SCOPE = 2048  # bytes: longer scopes are parsed every time


@functools.lru_cache(maxsize=512)
def _parse_cached(raw: bytes) -> Scope:
    return parse_scope(raw.decode("utf-8", errors="replace"))


def _parse(raw: bytes) -> Scope:
    """Parse an ``X-Scope`` value, remembering the recent ones: a fan-out sends the same
    scope to every site, and clients repeat theirs (a parse of a 32-site scope costs
    ~0.1 ms). Parsed scopes are immutable; invalid ones are not remembered."""
    if len(raw) > MAX_CACHED_SCOPE:
        return _parse_cached.__wrapped__(raw)
    return _parse_cached(raw)


def service_of(path: str) -> str | None:
    for prefix, service in SERVICE_PREFIXES:
        if path == prefix or path.startswith(prefix + "/"):
            return service
    return None


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


def header(scope: AsgiScope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


class ScopeRouter:
    def __init__(self, app: ASGIApp, *, max_buffer: int = 64 << 20):
        self.app = app
        self.max_buffer = max_buffer

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = header(scope, SCOPE_HEADER)
        if raw is None:
            await self.app(scope, receive, send)
            return
        try:
            parsed = _parse(raw)
        except BadRequest as exc:
            await fault_response(scope["path"], 400, f"Invalid X-Scope header: {exc.message}")(
                scope, receive, send
            )
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
            await fault_response(scope["path"], 400, f"Invalid X-Scope header: {exc.message}")(
                scope, receive, send
            )
            return
        if isinstance(resolved, Site) and resolved.name == ctx.name:
            await self.app(scope, receive, send)
            return
        refused = _token_refused(scope, ctx)
        if refused is not None:
            await fault_response(scope["path"], 401, refused)(scope, receive, send)
            return
        if isinstance(resolved, Site):
            await self._stream_to(ctx, resolved.name, scope, receive, send)
            return
        await self._fan_out(ctx, scope, receive, send, resolved)

    # -- one remote site: stream both ways ---------------------------------------------

    async def _stream_to(
        self,
        ctx: SiteContext,
        site: str,
        scope: AsgiScope,
        receive: Receive,
        send: Send,
    ) -> None:
        url = ctx.peers.get(site)
        if url is None:
            await fault_response(scope["path"], 400, f"site {site} is not reachable from here")(
                scope, receive, send
            )
            return
        down = _down_reason(ctx, site)
        if down is not None:
            await fault_response(scope["path"], 503, f"site {site} is offline: {down}")(
                scope, receive, send
            )
            return

        async def body_stream() -> Any:
            while True:
                message = await receive()
                chunk = message.get("body", b"")
                if chunk:
                    yield chunk
                if not message.get("more_body", False):
                    break

        try:
            response = await _send(
                ctx,
                scope,
                url,
                body_stream() if _has_body(scope) else None,
                _forward_headers(scope, ctx.name),
            )
        except httpx.HTTPError as exc:
            await fault_response(
                scope["path"], 503, f"site {site} did not answer: {remote.describe_http_error(exc)}"
            )(scope, receive, send)
            return
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [
                        *_answer_headers(response.headers.raw),
                        (SITE_HEADER, site.encode()),
                    ]
                    + (
                        [(b"content-length", response.headers["content-length"].encode())]
                        if "content-length" in response.headers
                        else []
                    ),
                }
            )
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()

    # -- several sites: buffer, evaluate, compose ---------------------------------------

    async def _fan_out(
        self,
        ctx: SiteContext,
        scope: AsgiScope,
        receive: Receive,
        send: Send,
        resolved: ResolvedExpr,
    ) -> None:
        body = await _read_body(receive, self.max_buffer)
        if body is None:
            await fault_response(
                scope["path"],
                413,
                f"a multi-site request body is limited to {self.max_buffer} bytes",
            )(scope, receive, send)
            return
        method = scope["method"]

        forward_headers = _forward_headers(scope, ctx.name)  # the same for every site

        async def call(site: str) -> SiteAnswer:
            if site == ctx.name:
                return await self._local(scope, body, ctx.name)
            return await self._remote(ctx, site, scope, body, forward_headers)

        outcome = await evaluate_resolved(
            resolved,
            call,
            failed=lambda a: (
                not a.ok and (a.error is not None or a.status >= 500 or a.status == 404)
            ),
            max_parallel=MAX_PARALLEL,
        )
        answers = [
            a.result
            if a.result is not None
            else SiteAnswer(site=a.site, status=502, error=str(a.error))
            for a in outcome.attempts
            if not a.cancelled
        ]
        write = method not in READ_METHODS
        if outcome.succeeded:
            winners = [a for a in outcome.results]
            if write and any(not a.ok for a in winners):
                status, payload = failure(scope["path"], answers, write=True)
            else:
                status, payload = merge_success([a for a in winners if a.ok] or winners)
        else:
            successes = [a for a in answers if a.ok]
            only_missing = all(a.status == 404 and a.error is None for a in answers if not a.ok)
            if not write and successes and only_missing:
                # A read under '&': the resource lives at some of the sites only.
                status, payload = merge_success(successes)
            else:
                status, payload = failure(scope["path"], answers, write=write)
        first = next((a for a in answers if a.ok), None)
        headers = [(b"content-type", b"application/json")]
        if first is not None:
            headers = [
                (k, v) for k, v in first.headers if k.lower() not in (b"content-type",)
            ] + headers
        headers.append((SITE_HEADER, ",".join(a.site for a in answers).encode()))
        headers.append((b"content-length", str(len(payload)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload if method != "HEAD" else b""})

    async def _local(self, scope: AsgiScope, body: bytes, site: str) -> SiteAnswer:
        sub = dict(scope)
        sub["headers"] = [*scope["headers"], (FORWARDED_HEADER, site.encode())]
        answer = SiteAnswer(site=site, status=500)
        chunks: list[bytes] = []
        sent = False

        async def sub_receive() -> Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def sub_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer.status = message["status"]
                answer.headers = [
                    (bytes(k), bytes(v))
                    for k, v in message.get("headers", [])
                    if bytes(k).lower() not in HOP_BY_HOP
                ]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(sub, sub_receive, sub_send)
        answer.body = b"".join(chunks)
        return answer

    async def _remote(
        self,
        ctx: SiteContext,
        site: str,
        scope: AsgiScope,
        body: bytes,
        headers: list[tuple[bytes, bytes]],
    ) -> SiteAnswer:
        url = ctx.peers.get(site)
        if url is None:
            return SiteAnswer(
                site=site, status=503, error=f"site {site} is not reachable from here"
            )
        try:
            response = await _send(ctx, scope, url, body or None, headers)
            try:
                content = await _read_decoded(response)  # as the merge needs it
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            return SiteAnswer(
                site=site, status=503, error=f"no answer: {remote.describe_http_error(exc)}"
            )
        return SiteAnswer(
            site=site,
            status=response.status_code,
            headers=[
                (k, v)
                for k, v in _answer_headers(response.headers.raw)
                if k.lower() != b"content-encoding"
            ],
            body=content,
        )


async def _read_decoded(response: httpx.Response) -> bytes:
    """The answer's body, content-decoded. Sites do not compress, so the body is
    usually read straight off the transport's stream (httpx's decoding layers cost
    more than the read); a compressed one goes through them."""
    stream = response.stream
    if "content-encoding" in response.headers or not isinstance(stream, httpx.AsyncByteStream):
        return await response.aread()
    return b"".join([piece async for piece in stream])


async def _send(
    ctx: SiteContext,
    scope: AsgiScope,
    base: str,
    content: Body,
    headers: list[tuple[bytes, bytes]],
) -> httpx.Response:
    """Forward the request to the site at ``base``, its answer's body left to read.

    Straight to the inter-site transport: the client's layers (auth, redirects,
    cookies, default headers) have nothing to do for a forwarded request, and building
    an ``httpx.Request`` (URL parsing, header normalisation) costs more than sending it.
    """
    timeout = ctx.settings.scope_call_timeout_seconds
    transport = ctx.peer_transport
    if isinstance(transport, PeerTransport):
        return await transport.forward(
            base, scope["method"], _target(scope), headers, content, timeout
        )
    request = httpx.Request(
        scope["method"],
        base.rstrip("/") + _target(scope),
        headers=headers,
        content=content,
        extensions={"timeout": httpx.Timeout(timeout).as_dict()},
    )
    if transport is None:
        return await ctx.http.send(request, stream=True)
    return await transport.handle_async_request(request)


def _down_reason(ctx: SiteContext, site: str) -> str | None:
    if ctx.fleet is None:
        return None
    return ctx.fleet.down.get(site)


def _fleet(ctx: SiteContext) -> Any:
    if ctx.fleet is None:
        raise BadRequest("this site has no fleet registry yet")
    return ctx.fleet


def _target(scope: AsgiScope) -> str:
    """The request target as the client sent it: raw path and query."""
    query: bytes = scope.get("query_string", b"")
    path: bytes = scope.get("raw_path") or scope["path"].encode()
    return path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")


def _forward_headers(scope: AsgiScope, origin: str) -> list[tuple[bytes, bytes]]:
    headers = [
        (k, v) for k, v in scope["headers"] if k.lower() not in HOP_BY_HOP and k != FORWARDED_HEADER
    ]
    headers.append((FORWARDED_HEADER, origin.encode()))
    return headers


def _answer_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(k.lower(), v) for k, v in raw if k.lower() not in HOP_BY_HOP]


def _has_body(scope: AsgiScope) -> bool:
    if scope["method"] in READ_METHODS or scope["method"] == "DELETE":
        return (
            header(scope, b"content-length") not in (None, b"0")
            or header(scope, b"transfer-encoding") is not None
        )
    return True


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


__all__ = ["SCOPE_KEY", "ScopeRouter"]
