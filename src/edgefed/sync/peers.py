"""Signed site-to-site calls of the sync engine, and checking who is calling.

Every sync request between sites is signed with the sender's site key
(``edgefed.core.sitesig``); the receiving side accepts it only from an active fleet
member whose key it pinned, and the sync routes then check the role (a push only from
a source this site registered with, a blob or a pull only from a registered receiver).
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
from starlette.requests import Request

from edgefed.api.context import SiteContext
from edgefed.core.errors import Unauthorized, Unavailable
from edgefed.core.sitesig import SIGNATURE_HEADER, SITE_HEADER, TIMESTAMP_HEADER, sign_request
from edgefed.core.sitesig import verify_request as verify_signature
from edgefed.core.tokens import public_key_from_b64


def peer_url(ctx: SiteContext, site: str) -> str:
    url = ctx.peers.get(site)
    if url is None:
        raise Unavailable(f"site {site} is not an active member of this fleet")
    return url.rstrip("/")


def signed_headers(ctx: SiteContext, *, method: str, path: str, body: bytes) -> dict[str, str]:
    return sign_request(
        ctx.signer.private_key, site=ctx.name, method=method, path=path, body=body, now=ctx.clock()
    )


async def signed_call(
    ctx: SiteContext,
    site: str,
    method: str,
    path: str,
    payload: Any = None,
    *,
    timeout: float = 30.0,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """One signed request to ``site``; transport errors propagate as httpx errors."""
    body = b"" if payload is None else orjson.dumps(payload)
    all_headers = signed_headers(ctx, method=method, path=path, body=body)
    if payload is not None:
        all_headers["content-type"] = "application/json"
    all_headers.update(headers or {})
    return await ctx.http.request(
        method, peer_url(ctx, site) + path, content=body, headers=all_headers, timeout=timeout
    )


async def verified_sender(request: Request, ctx: SiteContext) -> tuple[str, bytes]:
    """The name of the fleet site that signed this request, and its body."""
    raw = await request.body()
    sender = request.headers.get(SITE_HEADER, "")
    entry = ctx.fleet.entries.get(sender) if ctx.fleet is not None else None
    if entry is None or not entry.active:
        raise Unauthorized(f"site {sender!r} is not an active member of this fleet")
    timestamp = request.headers.get(TIMESTAMP_HEADER)
    signature = request.headers.get(SIGNATURE_HEADER)
    if not timestamp or not signature:
        raise Unauthorized("the site request is not signed")
    verify_signature(
        public_key_from_b64(entry.public_key),
        method=request.method,
        path=request.url.path,
        body=raw,
        timestamp=timestamp,
        signature=signature,
        now=ctx.clock(),
    )
    return sender, raw
