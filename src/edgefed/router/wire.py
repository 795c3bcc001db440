"""A request as the router passes it on: which service it is for, its headers, its body.

The router works on the ASGI scope, not on a parsed request: it must not read a body it
streams on, nor normalise headers it forwards. These helpers decide what crosses to
another site (hop-by-hop headers do not; ``X-Edgefed-Forwarded`` is set so the other
site serves the request itself) and what comes back.
"""

from __future__ import annotations

import re

from starlette.types import Receive
from starlette.types import Scope as AsgiScope

from edgefed.api import remote

SCOPE_HEADER = b"x-scope"
FORWARDED_HEADER = remote.FORWARDED_HEADER.lower().encode()
SITE_HEADER = b"x-edgefed-site"
TOKEN_HEADER = b"x-auth-token"

SERVICE_PREFIXES = (
    ("/compute", "compute"),
    ("/image", "image"),
    ("/network", "network"),
    ("/volume", "volume"),
    ("/identity", "identity"),
    ("/placement", "placement"),
    # edgefed's own API: alarms, telemetry, hosts... (aggregation, remote control)
    ("/edge", "fleet"),
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
# What follows a service's prefix in a version document's path: the root (``/image``,
# ``/image/``), ``/versions``, or one version's root (``/compute/v2.1``, ``/identity/v3/``).
VERSION_DOCUMENT = re.compile(r"/?(versions/?|v\d+(\.\d+)?/?)?")


def service_of(path: str) -> str | None:
    """The scope service a path belongs to (``/compute/...`` -> compute), by prefix."""
    for prefix, service in SERVICE_PREFIXES:
        if path == prefix or path.startswith(prefix + "/"):
            return service
    return None


def is_version_document(method: str, path: str) -> bool:
    """Whether this is a read of a service's version document, which every site answers
    itself whatever the scope: keystoneauth reads it before each command's first call
    (version discovery), and a routed one would turn a scope error into "does not have
    any supported versions"; answered here, the call that follows carries the error."""
    if method not in ("GET", "HEAD"):
        return False
    for prefix, _ in SERVICE_PREFIXES:
        if path == prefix or path.startswith(prefix + "/"):
            return VERSION_DOCUMENT.fullmatch(path[len(prefix) :]) is not None
    return False


def header(scope: AsgiScope, name: bytes) -> bytes | None:
    """The first value of header ``name`` (lowercase, as ASGI gives them)."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def target(scope: AsgiScope) -> str:
    """The request target as the client sent it: raw path and query."""
    query: bytes = scope.get("query_string", b"")
    path: bytes = scope.get("raw_path") or scope["path"].encode()
    return path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")


def forward_headers(scope: AsgiScope, origin: str) -> list[tuple[bytes, bytes]]:
    """The headers a forwarded request carries: the client's end-to-end ones, and
    ``X-Edgefed-Forwarded: <this site>`` (the receiving site serves it, no loops)."""
    headers = [
        (k, v) for k, v in scope["headers"] if k.lower() not in HOP_BY_HOP and k != FORWARDED_HEADER
    ]
    headers.append((FORWARDED_HEADER, origin.encode()))
    return headers


def answer_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """A site's answer headers that pass on to the client (lowercased, end-to-end)."""
    return [(k.lower(), v) for k, v in raw if k.lower() not in HOP_BY_HOP]


def has_body(scope: AsgiScope) -> bool:
    """Whether the request carries a body to forward (reads and deletes rarely do)."""
    if scope["method"] in READ_METHODS or scope["method"] == "DELETE":
        return (
            header(scope, b"content-length") not in (None, b"0")
            or header(scope, b"transfer-encoding") is not None
        )
    return True


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None once it passes ``limit`` bytes."""
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
