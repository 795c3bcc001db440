"""One HTTP/1.1 client connection as an ``asyncio.Protocol``, its answer parsed by llhttp.

The connection writes a request in one call and feeds the answer to llhttp (the C
parser uvicorn itself uses, through ``httptools``); the answer's body is handed over as
it arrives (``Exchange.pieces``), with reading paused while more than ``HIGH_WATER``
bytes wait for the consumer (so large image transfers stream in bounded memory). Errors
are httpx's transport exceptions, so nothing above the pool (http1.py) changes; a
connection the peer closed before any byte of the answer raises ``ClosedUnanswered``,
which the pool may retry.
"""

from __future__ import annotations

import asyncio
import collections
from typing import cast

import httptools
import httpx

HIGH_WATER = 1 << 20  # bytes of answer body buffered before reading pauses
LOW_WATER = 1 << 18


def resolve(waiter: asyncio.Future[None] | None) -> None:
    """Wake whoever waits on ``waiter`` (if anyone still does)."""
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class Exchange:
    """One request's answer as the parser sees it: head, then body pieces, then done."""

    __slots__ = (
        "buffered",
        "complete",
        "error",
        "head",
        "head_request",
        "headers",
        "keep_alive",
        "pieces",
        "reason",
        "received",
        "status",
        "until_close",
        "version",
        "waiter",
    )

    def __init__(self, head_request: bool) -> None:
        loop = asyncio.get_running_loop()
        self.head: asyncio.Future[None] = loop.create_future()
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.keep_alive = False
        self.version = b"HTTP/1.1"
        self.reason = b""
        self.pieces: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.complete = False
        self.error: httpx.TransportError | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.received = False  # any byte of the answer
        self.until_close = False  # no length, not chunked: the body ends with the connection
        self.head_request = head_request

    def wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        resolve(waiter)

    def expire(self) -> None:
        """The read timeout passed before the answer's head arrived."""
        self.fail(httpx.ReadTimeout("the peer did not answer in time"))

    def fail(self, error: httpx.TransportError) -> None:
        if self.complete:
            return
        self.error = error
        if not self.head.done():
            self.head.set_exception(error)
            self.head.exception()  # retrieved: a caller may have gone (timeout)
        self.wake()


class Connection(asyncio.Protocol):
    """One kept-alive connection to the origin, carrying one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._exchange: Exchange | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._paused_reading = False
        self._write_ready: asyncio.Future[None] | None = None
        self._broken_request = False

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        exchange, parser = self._exchange, self._parser
        if exchange is None or parser is None or exchange.complete:
            self.close()  # bytes nobody asked for: the connection is not usable any more
            return
        exchange.received = True
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            exchange.fail(httpx.RemoteProtocolError("the peer switched protocols"))
            self.close()
        except httptools.HttpParserError as exc:
            exchange.fail(httpx.RemoteProtocolError(f"malformed answer from the peer: {exc}"))
            self.close()

    def eof_received(self) -> bool | None:
        exchange = self._exchange
        if exchange is not None and not exchange.complete:
            if exchange.until_close and exchange.head.done():
                self._finish(exchange, reusable=False)
            else:
                exchange.fail(
                    httpx.RemoteProtocolError("the peer closed the connection mid-answer")
                    if exchange.received
                    else ClosedUnanswered("the peer closed the connection without answering")
                )
        self.closed = True
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        exchange = self._exchange
        if exchange is not None and not exchange.complete:
            reason = str(exc) if exc else "connection closed"
            exchange.fail(
                httpx.ReadError(f"the connection to the peer was lost: {reason}")
                if exchange.received
                else ClosedUnanswered(f"the connection to the peer was lost: {reason}")
            )
        waiter, self._write_ready = self._write_ready, None
        resolve(waiter)

    def pause_writing(self) -> None:
        if self._write_ready is None:
            self._write_ready = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        waiter, self._write_ready = self._write_ready, None
        resolve(waiter)

    # -- llhttp callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        exchange = self._exchange
        if exchange is not None and exchange.complete:
            # Bytes after the whole answer, in the same read: an answer nobody asked for.
            # The one asked for is complete (its body is queued); the connection is not
            # usable any more.
            self.close()

    def on_status(self, status: bytes) -> None:
        if self._exchange is not None:
            self._exchange.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._exchange is not None:
            self._exchange.headers.append((name, value))

    def on_headers_complete(self) -> None:
        exchange, parser = self._exchange, self._parser
        if exchange is None or parser is None:
            return
        status = parser.get_status_code()
        if 100 <= status < 200:  # informational: the real answer follows
            exchange.headers = []
            exchange.reason = b""
            return
        exchange.status = status
        exchange.keep_alive = parser.should_keep_alive()
        exchange.version = b"HTTP/" + parser.get_http_version().encode()
        exchange.until_close = not any(
            name.lower() in (b"content-length", b"transfer-encoding")
            for name, _ in exchange.headers
        ) and status not in (204, 304)
        if not exchange.head.done():
            exchange.head.set_result(None)
        if exchange.head_request:  # no body follows, whatever the length says
            self._finish(exchange, reusable=exchange.keep_alive)

    def on_body(self, body: bytes) -> None:
        exchange = self._exchange
        if exchange is None or exchange.complete:
            return
        exchange.pieces.append(body)
        exchange.buffered += len(body)
        if exchange.buffered > HIGH_WATER and not self._paused_reading and self.transport:
            self._paused_reading = True
            self.transport.pause_reading()
        exchange.wake()

    def on_message_complete(self) -> None:
        exchange, parser = self._exchange, self._parser
        if exchange is None or parser is None or exchange.complete:
            return
        if exchange.status == 0:  # the end of an informational answer
            return
        self._finish(exchange, reusable=exchange.keep_alive)

    # -- the exchange ------------------------------------------------------------------------

    def _finish(self, exchange: Exchange, *, reusable: bool) -> None:
        exchange.complete = True
        self._parser = None
        if not reusable:
            self.close()
        exchange.wake()

    def begin(self, head_request: bool) -> Exchange:
        exchange = Exchange(head_request)
        self._exchange = exchange
        self._parser = httptools.HttpResponseParser(self)
        return exchange

    def consumed(self, exchange: Exchange, size: int) -> None:
        exchange.buffered -= size
        if self._paused_reading and exchange.buffered < LOW_WATER and self.transport:
            self._paused_reading = False
            self.transport.resume_reading()

    def end(self) -> None:
        """The exchange is over (its answer read or abandoned)."""
        exchange, self._exchange = self._exchange, None
        if (
            exchange is None
            or not exchange.complete
            or exchange.error is not None
            or self._broken_request
        ):
            self.close()

    def abandon_after(self) -> None:
        """The request was not sent whole: close once its answer has been read."""
        self._broken_request = True

    async def write(self, data: bytes, timeout: float | None) -> None:
        """Write ``data``; wait (at most ``timeout``) only while the peer is not reading."""
        if self.closed or self.transport is None:
            raise ClosedUnanswered("the connection to the peer is closed")
        self.transport.write(data)
        waiter = self._write_ready
        if waiter is not None:
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.shield(waiter)
            except TimeoutError:
                raise httpx.WriteTimeout("sending the request to the peer timed out") from None
            if self.closed:
                raise httpx.WriteError("the connection to the peer was lost while sending")

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    @property
    def reusable(self) -> bool:
        return not self.closed and self._exchange is None


class ClosedUnanswered(httpx.ReadError):
    """A kept-alive connection closed by the peer before any byte of the answer."""
