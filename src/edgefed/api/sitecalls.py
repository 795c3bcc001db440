"""Site-to-site requests signed with the site key, and checking who sent one.

Gossip, joins and sync are calls between sites, not on behalf of a user: the sender
signs each with its site key (``core.sitesig``: method, path and query, timestamp,
nonce, the target site and the body's digest). The receiving side accepts one only
from an active fleet member whose key it pinned, addressed to itself, fresh and never
seen before; the routes then decide what that site may do (a push only from a source
this site registered with, a pull only from an accepted receiver, …).
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from edgefed.api.context import SiteContext
from edgefed.core.ed25519 import Ed25519PublicKey
from edgefed.core.errors import Unauthorized
from edgefed.core.sitesig import (
    NONCE_HEADER,
    SIGNATURE_HEADER,
    SITE_HEADER,
    TARGET_HEADER,
    TIMESTAMP_HEADER,
    sign_request,
    verify_request,
)


def signed_headers(
    ctx: SiteContext, *, target: str, method: str, path: str, body: bytes
) -> dict[str, str]:
    """Headers signing one request of this site to ``target`` (``path`` with its query)."""
    return sign_request(
        ctx.signer.private_key,
        site=ctx.name,
        target=target,
        method=method,
        path=path,
        body=body,
        now=ctx.clock(),
    )


def signed_target(conn: HTTPConnection) -> str:
    """The path and query of a request as its sender signed them."""
    raw = conn.scope.get("raw_path")
    path = raw.decode("latin-1") if raw else conn.scope["path"]
    query = conn.scope.get("query_string") or b""
    return f"{path}?{query.decode('latin-1')}" if query else path


def check_signed(
    conn: HTTPConnection, ctx: SiteContext, *, key: Ed25519PublicKey, sender: str, body: bytes
) -> None:
    """Unauthorized unless ``conn`` is signed by ``key`` for this site, fresh and new."""
    headers = conn.headers
    timestamp = headers.get(TIMESTAMP_HEADER)
    signature = headers.get(SIGNATURE_HEADER)
    if not timestamp or not signature:
        raise Unauthorized("the site request is not signed")
    verify_request(
        key,
        sender=sender,
        method=conn.scope.get("method", "GET"),
        path=signed_target(conn),
        body=body,
        timestamp=timestamp,
        nonce=headers.get(NONCE_HEADER, ""),
        target=headers.get(TARGET_HEADER, ""),
        signature=signature,
        expected_target=ctx.name,
        nonces=ctx.nonces,
        now=ctx.clock(),
    )


def verified_site(conn: HTTPConnection, ctx: SiteContext, body: bytes) -> str:
    """The active fleet member that signed this request (with ``body``), or 401."""
    sender = conn.headers.get(SITE_HEADER, "")
    active = ctx.fleet is not None and ctx.fleet.active(sender) and sender != ctx.name
    key = ctx.keyring.lookup(sender) if active else None
    if key is None:
        raise Unauthorized(f"site {sender!r} is not an active member of this fleet")
    check_signed(conn, ctx, key=key, sender=sender, body=body)
    return sender
