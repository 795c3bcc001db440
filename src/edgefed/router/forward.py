"""Sending a request on to one other site: streamed both ways, or read for a merge.

A forwarded request goes straight to the inter-site transport (``PeerTransport.forward``):
the client's layers (auth, redirects, cookies, default headers) have nothing to do for
it, and building an ``httpx.Request`` (URL parsing, header normalisation) costs more than
sending it. One remote site (``stream_to``) gets the body as it arrives and the client
gets the answer as it arrives (image uploads and downloads of any size); a fan-out leg
(``remote_answer``) is read whole, because the answers are merged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from starlette.types import Receive, Send
from starlette.types import Scope as AsgiScope

from edgefed.api import remote
from edgefed.api.context import SiteContext
from edgefed.api.faults import fault_response
from edgefed.api.http1 import Body
from edgefed.api.peer_transport import PeerTransport
from edgefed.router.merge import SiteAnswer
from edgefed.router.wire import SITE_HEADER, answer_headers, forward_headers, has_body, target


async def stream_to(
    ctx: SiteContext, site: str, scope: AsgiScope, receive: Receive, send: Send
) -> None:
    """Forward the request to ``site`` in one hop, streaming the body and the answer; a
    fault in the service's shape when the site is unknown, offline or does not answer."""
    url = ctx.peers.get(site)
    if url is None:
        await fault_response(scope["path"], 400, f"site {site} is not reachable from here")(
            scope, receive, send
        )
        return
    down = ctx.fleet.down.get(site) if ctx.fleet is not None else None
    if down is not None:
        await fault_response(scope["path"], 503, f"site {site} is offline: {down}")(
            scope, receive, send
        )
        return

    async def body_stream() -> AsyncIterator[bytes]:
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                break

    try:
        response = await send_request(
            ctx,
            scope,
            url,
            body_stream() if has_body(scope) else None,
            forward_headers(scope, ctx.name),
        )
    except httpx.HTTPError as exc:
        await fault_response(
            scope["path"], 503, f"site {site} did not answer: {remote.describe_http_error(exc)}"
        )(scope, receive, send)
        return
    try:
        length = response.headers.get("content-length")
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": [
                    *answer_headers(response.headers.raw),
                    (SITE_HEADER, site.encode()),
                    *([(b"content-length", length.encode())] if length is not None else []),
                ],
            }
        )
        async for chunk in response.aiter_raw():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        await response.aclose()


async def remote_answer(
    ctx: SiteContext,
    site: str,
    scope: AsgiScope,
    body: bytes,
    headers: list[tuple[bytes, bytes]],
) -> SiteAnswer:
    """``site``'s whole answer to the request (content-decoded), or a 503 answer saying
    why there is none."""
    url = ctx.peers.get(site)
    if url is None:
        return SiteAnswer(site=site, status=503, error=f"site {site} is not reachable from here")
    try:
        response = await send_request(ctx, scope, url, body or None, headers)
        try:
            content = await read_decoded(response)  # as the merge needs it
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
            for k, v in answer_headers(response.headers.raw)
            if k.lower() != b"content-encoding"
        ],
        body=content,
    )


async def read_decoded(response: httpx.Response) -> bytes:
    """The answer's body, content-decoded. Sites do not compress, so the body is
    usually read straight off the transport's stream (httpx's decoding layers cost
    more than the read); a compressed one goes through them."""
    stream = response.stream
    if "content-encoding" in response.headers or not isinstance(stream, httpx.AsyncByteStream):
        return await response.aread()
    return b"".join([piece async for piece in stream])


async def send_request(
    ctx: SiteContext,
    scope: AsgiScope,
    base: str,
    content: Body,
    headers: list[tuple[bytes, bytes]],
) -> httpx.Response:
    """Send the request to the site at ``base``; its answer's body is left to read."""
    timeout = ctx.settings.scope_call_timeout_seconds
    transport = ctx.peer_transport
    if isinstance(transport, PeerTransport):
        return await transport.forward(
            base, scope["method"], target(scope), headers, content, timeout
        )
    request = httpx.Request(
        scope["method"],
        base.rstrip("/") + target(scope),
        headers=headers,
        content=content,
        extensions={"timeout": httpx.Timeout(timeout).as_dict()},
    )
    if transport is None:
        return await ctx.http.send(request, stream=True)
    return await transport.handle_async_request(request)
