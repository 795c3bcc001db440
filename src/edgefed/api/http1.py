"""A small HTTP/1.1 client connection pool on asyncio and llhttp (``httptools``).

Sites talk to each other for every forwarded request, fan-out leg and sync push, so the
inter-site client is on the hot path of the router and of sync. httpcore, under httpx,
parses HTTP with the pure-Python ``h11`` and wraps every socket operation in an anyio
stream, at many times the CPU per request and answer of what follows (docs/bench.md,
``bench http_client``, which also measures aiohttp). Here an ``asyncio.Protocol``
writes the request in one call and feeds the answer to llhttp, the C parser uvicorn
itself uses (http1_connection.py); the answer's body is handed over as it arrives, with
reading paused while the consumer lags (so large image transfers stream in bounded
memory). This module is the pool.

``Http1Pool`` is an ``httpx.AsyncBaseTransport`` for one origin: callers keep using
``httpx.Request``/``httpx.Response`` and the httpx exception types (``ConnectError``,
``ReadTimeout``, ``RemoteProtocolError``…), so nothing above the transport changes.
Over TLS, a pool may be given the server name to send (SNI) and a ``check`` that sees
each new connection after its handshake and before its first request, and refuses it
by raising (site-to-site pinning, api/tls.py); a kept-alive connection is not checked
again, which is why a TLS connection costs a handshake once, not per request.

What it does not do, on purpose: HTTP/2, proxies, ``Expect: 100-continue``, upgrades.
A request that finds its kept-alive connection closed by the peer before any byte of
the answer arrived is retried once on a new connection when its method is idempotent
and its body can be sent again (the peer cannot have acted on it twice).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from typing import cast

import httpx

from edgefed.api.http1_connection import ClosedUnanswered, Connection, Exchange

IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})


class _Body(httpx.AsyncByteStream):
    def __init__(self, pool: Http1Pool, conn: Connection, exchange: Exchange, read: float | None):
        self._pool = pool
        self._conn: Connection | None = conn
        self._exchange = exchange
        self._read_timeout = read

    async def __aiter__(self) -> AsyncIterator[bytes]:
        exchange = self._exchange
        for _ in range(1 << 40):  # bounded by the answer's size
            conn = self._conn
            if conn is None:
                return
            if exchange.pieces:
                piece = exchange.pieces.popleft()
                conn.consumed(exchange, len(piece))
                yield piece
                continue
            if exchange.error is not None:
                raise exchange.error
            if exchange.complete:
                return
            waiter = asyncio.get_running_loop().create_future()
            exchange.waiter = waiter
            try:
                async with asyncio.timeout(self._read_timeout):
                    await waiter
            except TimeoutError:
                raise httpx.ReadTimeout("the peer stopped sending its answer") from None

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.end()
            self._pool.release(conn)


Body = bytes | AsyncIterable[bytes] | None


class Http1Pool(httpx.AsyncBaseTransport):
    """Connections to one origin (host and port, TLS or not), kept alive and reused.

    ``send`` is the pool's own entry: a method, a request target, the headers as they go
    on the wire (Host, Content-Length or ``Transfer-Encoding: chunked`` included) and
    the body. ``handle_async_request`` makes it an httpx transport too.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        tls: ssl.SSLContext | None,
        limits: httpx.Limits,
        clock: Callable[[], float] = time.monotonic,
        server_name: str | None = None,
        check: Callable[[asyncio.BaseTransport], None] | None = None,
    ):
        self._host = host
        self._port = port
        self._tls = tls
        self._server_name = server_name or host
        self._check = check
        self._max = limits.max_connections or 1 << 30
        self._max_idle = (
            limits.max_keepalive_connections
            if limits.max_keepalive_connections is not None
            else self._max
        )
        self._expiry = limits.keepalive_expiry
        self._clock = clock
        self._idle: list[Connection] = []
        self._count = 0  # connections open or opening
        self._waiters: collections.deque[asyncio.Future[Connection | None]] = collections.deque()
        self._closed = False

    # -- connections ---------------------------------------------------------------------

    def _take_idle(self) -> Connection | None:
        now = self._clock()
        while self._idle:
            conn = self._idle.pop()
            if conn.reusable and (self._expiry is None or now - conn.idle_since < self._expiry):
                return conn
            self._drop(conn)
        return None

    def _drop(self, conn: Connection) -> None:
        """Close a connection this pool counts, and stop counting it."""
        conn.close()
        self._count -= 1

    async def _acquire(self, timeout: float | None) -> Connection | None:
        """A kept-alive connection, or None when the caller may open a new one."""
        conn = self._take_idle()
        if conn is not None:
            return conn
        if self._count < self._max:
            self._count += 1
            return None
        waiter: asyncio.Future[Connection | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                return await waiter
        except BaseException as exc:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Handed a connection (or the right to open one) as the wait ended.
                self._give_back(waiter.result())
            if isinstance(exc, TimeoutError):
                raise httpx.PoolTimeout("no free connection to the peer in time") from None
            raise

    def _give_back(self, conn: Connection | None) -> None:
        if conn is None:
            self._count -= 1
            self._wake_one(None)
        else:
            self.release(conn)

    def release(self, conn: Connection) -> None:
        """A connection is free again (or dead): hand it on, keep it, or close it."""
        if not conn.reusable or self._closed:
            self._drop(conn)
            self._wake_one(None)
            return
        conn.idle_since = self._clock()
        if self._wake_one(conn):
            return
        if len(self._idle) >= self._max_idle:
            self._drop(conn)
            return
        self._idle.append(conn)

    def _wake_one(self, conn: Connection | None) -> bool:
        """Give ``conn`` (or the right to open one) to the longest waiter."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if waiter.done():
                continue
            if conn is None:
                self._count += 1
            waiter.set_result(conn)
            return True
        return False

    async def _open(self, timeout: float | None) -> Connection:
        loop = asyncio.get_running_loop()
        host, port, tls = self._host, self._port, self._tls
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    Connection,
                    host,
                    port,
                    ssl=tls,
                    server_hostname=self._server_name if tls is not None else None,
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}") from None
        if self._check is not None and conn.transport is not None:
            try:
                self._check(conn.transport)
            except BaseException:
                conn.close()
                raise
        return conn

    # -- one request ------------------------------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        stream = request.stream
        body: Body = (
            b"".join(stream)
            if isinstance(stream, httpx.ByteStream)
            else cast(httpx.AsyncByteStream, stream)
        )
        response = await self.send(
            request.method.encode("ascii"),
            request.url.raw_path,
            request.headers.raw,
            body,
            request.extensions.get("timeout", {}),
        )
        response.request = request
        return response

    async def send(
        self,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: Body,
        timeouts: Mapping[str, float | None],
    ) -> httpx.Response:
        replayable = not isinstance(body, AsyncIterable) and method in IDEMPOTENT
        for attempt in range(2):
            conn = await self._acquire(timeouts.get("pool"))
            reused = conn is not None
            try:
                if conn is None:
                    conn = await self._open(timeouts.get("connect"))
                return await self._exchange(conn, method, target, headers, body, timeouts)
            except BaseException as exc:
                if conn is not None:
                    conn.close()
                    conn.end()
                self._give_back(conn)
                if not (
                    isinstance(exc, ClosedUnanswered) and reused and replayable and attempt == 0
                ):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _exchange(
        self,
        conn: Connection,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: Body,
        timeouts: Mapping[str, float | None],
    ) -> httpx.Response:
        exchange = conn.begin(method == b"HEAD")
        head = [method, b" ", target, b" HTTP/1.1\r\n"]
        chunked = False
        for name, value in headers:
            head += (name, b": ", value, b"\r\n")
            if name.lower() == b"transfer-encoding" and value.lower() == b"chunked":
                chunked = True
        head.append(b"\r\n")
        write_timeout = timeouts.get("write")
        if not isinstance(body, AsyncIterable):
            await conn.write(b"".join(head) + body if body else b"".join(head), write_timeout)
        else:
            await conn.write(b"".join(head), write_timeout)
            try:
                async for piece in body:
                    if piece:
                        framed = b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece
                        await conn.write(framed, write_timeout)
                if chunked:
                    await conn.write(b"0\r\n\r\n", write_timeout)
            except httpx.TransportError:
                # A peer may answer before it has read the whole body (a 413, a 401) and
                # close: that answer is the one to return, on a connection not reused.
                conn.abandon_after()
                if not exchange.head.done() or exchange.head.exception() is not None:
                    raise
        # A timer rather than asyncio.timeout(): no task cancellation to arrange, and
        # none at all when the answer is already here.
        read_timeout = timeouts.get("read")
        timer = None
        if read_timeout is not None and not exchange.head.done():
            timer = asyncio.get_running_loop().call_later(read_timeout, exchange.expire)
        try:
            await exchange.head
        finally:
            if timer is not None:
                timer.cancel()
        return httpx.Response(
            exchange.status,
            headers=exchange.headers,
            stream=_Body(self, conn, exchange, timeouts.get("read")),
            extensions={"http_version": exchange.version, "reason_phrase": exchange.reason},
        )

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        """Close the idle connections; those in use are closed when released."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            self._drop(conn)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(httpx.PoolTimeout("the connection pool was closed"))
