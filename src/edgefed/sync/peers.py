"""Signed site-to-site calls of the sync engine, and checking who is calling.

Every sync request between sites is signed with the sender's site key
(``edgefed.api.sitecalls``); the receiving side accepts it only from an active fleet
member whose key it pinned, and the sync routes then check the role (a push only from
a source this site registered with, a blob or a pull only from a registered receiver).
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
from starlette.requests import Request

from edgefed.api.context import SiteContext
from edgefed.api.sitecalls import signed_headers, verified_site
from edgefed.core.errors import Unavailable

__all__ = ["PULL_PATH", "peer_url", "signed_call", "signed_headers", "verified_sender"]

# A receiver asks a source for one resource (and its children) again.
PULL_PATH = "/edge/v1/sync/pull"


def peer_url(ctx: SiteContext, site: str) -> str:
    url = ctx.peers.get(site)
    if url is None:
        raise Unavailable(f"site {site} is not an active member of this fleet")
    return url.rstrip("/")


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
    all_headers = signed_headers(ctx, target=site, method=method, path=path, body=body)
    if payload is not None:
        all_headers["content-type"] = "application/json"
    all_headers.update(headers or {})
    return await ctx.http.request(
        method, peer_url(ctx, site) + path, content=body, headers=all_headers, timeout=timeout
    )


async def verified_sender(request: Request, ctx: SiteContext) -> tuple[str, bytes]:
    """The name of the fleet site that signed this request, and its body."""
    raw = await request.body()
    return verified_site(request, ctx, raw), raw
