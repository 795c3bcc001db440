"""The inter-site client's transport: one connection pool per peer site.

httpcore's pool examines every pooled connection for every request it places (closed?
expired? the latter a ``poll(2)`` on the socket). One pool holding warm connections to a
hundred peers therefore makes a fan-out to all of them ten thousand such checks, where
the aggregator of a 100-site fleet spent most of its CPU (docs/bench.md). With a pool
per peer, each request looks at that peer's few connections only.

A pool only closes its expired connections when it is used again, and gossip talks to
random peers: left alone, every site would keep an idle connection to every peer it
ever gossiped with (a 100-site fleet: 10,000 connections, each held open by the peer's
keep-alive). So pools unused for ``idle_seconds`` are closed, at most every
``sweep_seconds``, in the background.

The limits given apply per peer. Each pool is an ``api.http1.Http1Pool`` (llhttp under
asyncio) rather than httpcore's (pure-Python h11 under anyio): see that module.

An https peer is a site reached over TLS and pinned to its registry key (api/tls.py):
its origin must have a pin in ``pins`` (else the request is refused before connecting),
each new connection is checked against that pin before it carries a request, and a pin
that changes closes that origin's pool. The https pools share one client context,
made on first use.

A peer's answer is read whole by most callers (``response.json()``), so a peer that
answers without end would fill this site's memory: answers to ``httpx`` requests are cut
off past ``MAX_ANSWER_BYTES`` (a ``RemoteProtocolError``) unless the request's
``max_answer_bytes`` extension says otherwise (``None``: the caller streams and bounds
what it keeps, as image downloads do). ``forward`` sets none: the router streams the
answer on to its client, reading only as fast as that client does.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import httpx

from edgefed.api.http1 import Body, Http1Pool
from edgefed.api.tls import SITE_SERVER_NAME, PinStore, site_client_context

Origin = tuple[str, str, int]  # scheme, host, port
DEFAULT_PORTS = {"http": 80, "https": 443}
# The longest answer a peer may give a request that does not say otherwise: many times
# what a fleet of a thousand sites answers for its status or registry.
MAX_ANSWER_BYTES = 16 << 20
ANSWER_LIMIT = "max_answer_bytes"  # the request extension that changes it


def origin(scheme: str, host: str, port: int | None) -> Origin:
    """The pool key of an address: only http(s), the scheme's port by default."""
    if scheme not in DEFAULT_PORTS or not host:
        raise httpx.UnsupportedProtocol(f"cannot send a request to {scheme}://{host}")
    return scheme, host, port or DEFAULT_PORTS[scheme]


def origin_of(base: str) -> tuple[Origin, str, bytes]:
    """``http://host:port/prefix`` -> ((scheme, host, port), "/prefix", Host header)."""
    parts = urlsplit(base)
    key = origin(parts.scheme.lower(), parts.hostname or "", parts.port)
    scheme, host, port = key
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == DEFAULT_PORTS[scheme] else f"{shown}:{port}"
    return key, parts.path.rstrip("/"), host_header.encode("idna")


class _Tracked(httpx.AsyncByteStream):
    """A response body that says when it is closed (the pool may be swept after) and
    is cut off past ``most`` bytes (when given)."""

    def __init__(
        self,
        inner: httpx.SyncByteStream | httpx.AsyncByteStream,
        done: Callable[[], None],
        most: int | None = None,
    ):
        assert isinstance(inner, httpx.AsyncByteStream)
        self._inner = inner
        self._done: Callable[[], None] | None = done
        self._most = most

    async def __aiter__(self) -> AsyncIterator[bytes]:
        most, seen = self._most, 0
        async for chunk in self._inner:
            seen += len(chunk)
            if most is not None and seen > most:
                raise httpx.RemoteProtocolError(
                    f"the peer's answer is longer than {most} bytes; cut off"
                )
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            done, self._done = self._done, None
            if done is not None:
                done()


class PeerTransport(httpx.AsyncBaseTransport):
    def __init__(
        self,
        *,
        limits: httpx.Limits,
        idle_seconds: float = 15.0,
        sweep_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        pins: PinStore | None = None,
    ):
        self._limits = limits
        self._pins = pins if pins is not None else PinStore()
        self._pins.on_change.append(self._forget)
        self._idle_seconds = idle_seconds
        self._sweep_seconds = sweep_seconds
        self._clock = clock
        self._tls: ssl.SSLContext | None = None
        self._pools: dict[Origin, Http1Pool] = {}
        # base URL -> its origin, path prefix and Host (as many as the fleet has sites)
        self._origins: dict[str, tuple[Origin, str, bytes]] = {}
        self._used: dict[Origin, float] = {}
        self._busy: dict[Origin, int] = {}
        self._swept = clock()
        self._sweeping: asyncio.Task[None] | None = None

    def _pool(self, key: Origin) -> Http1Pool:
        pool = self._pools.get(key)
        if pool is None:
            scheme, host, port = key
            if scheme == "https":
                if self._tls is None:
                    self._tls = site_client_context()
                pool = Http1Pool(
                    host=host,
                    port=port,
                    tls=self._tls,
                    limits=self._limits,
                    clock=self._clock,
                    server_name=SITE_SERVER_NAME,
                    check=functools.partial(self._pins.check, host, port),
                )
            else:
                pool = Http1Pool(
                    host=host, port=port, tls=None, limits=self._limits, clock=self._clock
                )
            self._pools[key] = pool
        return pool

    def _forget(self, host: str, port: int) -> None:
        """The pin of an https origin changed or went: its connections must not serve."""
        pool = self._pools.pop(("https", host, port), None)
        if pool is not None:
            pool.close()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        key = origin(url.scheme, url.host, url.port)
        most = request.extensions.get(ANSWER_LIMIT, MAX_ANSWER_BYTES)
        return await self._send(key, lambda pool: pool.handle_async_request(request), most)

    async def forward(
        self,
        base: str,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        body: Body,
        timeout: float,
    ) -> httpx.Response:
        """Send a request to the site at ``base`` (``http://host:port``) without an
        ``httpx.Request``: parsing its URL and headers again costs more than the
        exchange itself (the router forwards what it already has). ``headers`` carry
        neither Host nor the body's framing; both are added here."""
        known = self._origins.get(base)
        if known is None:
            known = self._origins[base] = origin_of(base)
        key, prefix, host = known
        wire = [(b"host", host), *headers]
        if isinstance(body, bytes):
            wire.append((b"content-length", b"%d" % len(body)))
        elif body is not None:
            wire.append((b"transfer-encoding", b"chunked"))
        timeouts = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
        raw = method.encode("ascii"), (prefix + target).encode("latin-1")
        return await self._send(key, lambda pool: pool.send(*raw, wire, body, timeouts))

    async def _send(
        self,
        key: Origin,
        send: Callable[[Http1Pool], Awaitable[httpx.Response]],
        most: int | None = None,
    ) -> httpx.Response:
        if key[0] == "https":
            self._pins.require(key[1], key[2])  # an unpinned origin: refused, not dialled
        now = self._clock()
        self._used[key] = now
        if now - self._swept >= self._sweep_seconds and (
            self._sweeping is None or self._sweeping.done()
        ):
            self._swept = now
            self._sweeping = asyncio.create_task(self._sweep(now), name="peer-pool-sweep")
        pool = self._pool(key)
        self._busy[key] = self._busy.get(key, 0) + 1

        def done() -> None:  # when the response body is closed: the pool is idle again
            self._busy[key] = self._busy.get(key, 1) - 1
            self._used[key] = self._clock()

        try:
            response = await send(pool)
        except BaseException:
            done()
            raise
        response.stream = _Tracked(response.stream, done, most)
        return response

    async def _sweep(self, now: float) -> None:
        idle = [
            key
            for key, used in self._used.items()
            if now - used >= self._idle_seconds and not self._busy.get(key)
        ]
        for key in idle:
            pool = self._pools.pop(key, None)
            self._used.pop(key, None)
            self._busy.pop(key, None)
            if pool is not None:
                with contextlib.suppress(Exception):
                    await pool.aclose()

    async def aclose(self) -> None:
        if self._sweeping is not None:
            with contextlib.suppress(Exception):
                await self._sweeping
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.aclose()
