"""Service-to-service calls that follow the request's scope.

When a request carries a scope (``{compute: Berlin, image: Denver}``), a service that
needs another service (compute needs the image) asks the sites the scope names for
that service, with the same ``|``/``&`` semantics as the router, through the one
injected inter-site HTTP client. The caller's token travels along: every fleet site
validates it locally. Calls are marked forwarded, so the receiving site serves them
itself.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from edgefed.api.context import SiteContext
from edgefed.api.peer_transport import ANSWER_LIMIT
from edgefed.core.errors import BadRequest, Unavailable
from edgefed.core.scope import Expr, Scope
from edgefed.core.scope_eval import evaluate

log = logging.getLogger("edgefed.remote")

SCOPE_KEY = "edgefed.scope"
FORWARDED_HEADER = "X-Edgefed-Forwarded"
DOWNLOAD_ATTEMPTS = 5
CHUNK = 1 << 20


def describe_http_error(exc: httpx.HTTPError) -> str:
    """What went wrong talking to another site, for a fault or an alarm reason."""
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    return str(exc) or type(exc).__name__


def describe_refusal(site: str, r: httpx.Response) -> str:
    """Another site's refusal, its fault message first, for a fault or a journal."""
    try:
        doc = r.json()
        detail = next(iter(doc.values())) if isinstance(doc, dict) and doc else doc
        message = detail.get("message") if isinstance(detail, dict) else None
    except ValueError:
        message = None
    return f"{site} answered {r.status_code}: {message or r.text[:200]}"


@dataclass(frozen=True)
class RemoteAnswer:
    site: str
    status: int
    body: bytes
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and 200 <= self.status < 300

    def json(self) -> Any:
        return httpx.Response(self.status, content=self.body).json()

    def reason(self) -> str:
        return self.error or f"{self.status} {self.body[:200].decode(errors='replace')}"


def scope_entry(asgi_scope: Mapping[str, Any], service: str) -> Expr | None:
    """The request's scope entry for ``service``, if the request carried one."""
    scope = asgi_scope.get(SCOPE_KEY)
    if isinstance(scope, Scope) and service in scope:
        return scope[service]
    return None


async def ask_scope(
    ctx: SiteContext,
    expr: Expr,
    method: str,
    path: str,
    *,
    token: str,
    skip_self: bool = True,
    timeout: float = 30.0,
) -> tuple[RemoteAnswer | None, list[RemoteAnswer]]:
    """(the first successful answer or None, every answer) for ``method path``."""
    if ctx.fleet is None:
        raise BadRequest("this site has no fleet registry: scopes cannot name other sites")

    async def call(site: str) -> RemoteAnswer:
        if site == ctx.name and skip_self:
            return RemoteAnswer(site=site, status=404, body=b"", error="not here")
        base = ctx.fleet_sites().get(site)
        if base is None:
            return RemoteAnswer(site=site, status=503, body=b"", error="unknown site")
        down = ctx.fleet.down.get(site) if ctx.fleet is not None else None
        if down is not None:
            return RemoteAnswer(site=site, status=503, body=b"", error=f"offline ({down})")
        try:
            r = await ctx.http.request(
                method,
                base + path,
                headers={"X-Auth-Token": token, FORWARDED_HEADER: ctx.name},
                timeout=timeout,
            )
        except httpx.HTTPError as exc:
            return RemoteAnswer(site=site, status=503, body=b"", error=f"no answer ({exc!r})")
        return RemoteAnswer(site=site, status=r.status_code, body=r.content)

    outcome = await evaluate(expr, ctx.fleet, call, failed=lambda a: not a.ok)
    answers = [a.result for a in outcome.attempts if a.result is not None]
    winner = next((a for a in outcome.results if a.ok), None)
    return winner, answers


async def download(
    ctx: SiteContext,
    site: str,
    path: str,
    target: Path,
    *,
    token: str,
    expected_size: int | None = None,
    timeout: float = 60.0,
) -> str:
    """Download ``path`` from ``site`` into ``target``, resuming with HTTP Range after a
    cut (bounded attempts); the file's sha512 hex."""
    base = ctx.fleet_sites().get(site)
    if base is None:
        raise Unavailable(f"site {site} is not in the fleet registry")
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with target.open("wb") as fh:
        for attempt in range(DOWNLOAD_ATTEMPTS):
            headers = {"X-Auth-Token": token, FORWARDED_HEADER: ctx.name}
            if written:
                headers["Range"] = f"bytes={written}-"
            try:
                async with ctx.http.stream(
                    "GET",
                    base + path,
                    headers=headers,
                    timeout=timeout,
                    extensions={ANSWER_LIMIT: None},  # a file, streamed to disk
                ) as r:
                    if r.status_code not in (200, 206):
                        raise Unavailable(f"{site} answered {r.status_code} for {path}")
                    if written and r.status_code == 200:
                        fh.seek(0)
                        fh.truncate()
                        written = 0
                    # As the bytes arrive: with a chunk size, httpx would hold up to
                    # that much back, and a cut would lose it (the resume starts over).
                    async for chunk in r.aiter_bytes():
                        fh.write(chunk)
                        written += len(chunk)
                break
            except httpx.HTTPError as exc:
                log.info("download of %s from %s cut at %d bytes (%r)", path, site, written, exc)
                if attempt == DOWNLOAD_ATTEMPTS - 1:
                    raise Unavailable(f"download of {path} from {site} failed: {exc!r}") from exc
        fh.flush()
        os.fsync(fh.fileno())
    if expected_size is not None and written != expected_size:
        raise Unavailable(f"{site} sent {written} bytes of {path}, expected {expected_size}")
    digest = hashlib.sha512()
    with target.open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
