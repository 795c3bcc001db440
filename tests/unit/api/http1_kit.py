"""A scripted loopback HTTP/1.1 server and helpers for the pool's tests (test_http1*.py).

Every test runs on both event loops a site may use (conftest.py's ``run``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx

from edgefed.api.http1 import Http1Pool

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


class Scripted:
    """A server whose every connection runs ``handler(reader, writer, index)``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = self.connections
        self.connections += 1
        try:
            await self.handler(reader, writer, index)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> Scripted:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One request: its head and its body (by Content-Length or chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    length = next((int(x.split(b":")[1]) for x in lines if x.startswith(b"content-length:")), 0)
    if b"transfer-encoding: chunked" in lines:
        body = b""
        for _ in range(10_000):
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            piece = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += piece[:-2]
        return head, body
    return head, await reader.readexactly(length)


def answer(body: bytes, *extra: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (
        len(body),
        b"".join(h + b"\r\n" for h in extra),
        body,
    )


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
    for _ in range(100):
        head, body = await read_request(reader)
        writer.write(answer(head.split(b" ")[1] + b"|" + body))
        await writer.drain()


def pool(server: Scripted, **limits: Any) -> Http1Pool:
    """A pool for the server's origin (its port outlives the server)."""
    return Http1Pool(host="127.0.0.1", port=server.port, tls=None, limits=httpx.Limits(**limits))


@contextlib.asynccontextmanager
async def serving(
    handler: Handler, **limits: Any
) -> AsyncIterator[tuple[Scripted, httpx.AsyncClient]]:
    """A scripted server and an httpx client on a pool for it."""
    async with (
        Scripted(handler) as server,
        httpx.AsyncClient(transport=pool(server, **limits)) as client,
    ):
        yield server, client


class PauseSpy:
    """A connection's transport, telling when reading is paused."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.paused = asyncio.Event()

    def pause_reading(self) -> None:
        self.paused.set()
        self.inner.pause_reading()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
