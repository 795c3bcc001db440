"""The inter-site transport: a pool per peer, idle pools closed, busy ones kept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from edgefed.api.peer_transport import PeerTransport


class TinyServer:
    """HTTP/1.1 keep-alive on loopback; counts the connections open right now."""

    def __init__(self) -> None:
        self.open = 0
        self.changed = asyncio.Condition()  # notified when a connection ends
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        try:
            for _ in range(1000):  # bounded: requests per connection
                head = await reader.readuntil(b"\r\n\r\n")
                if not head:
                    break
                body = b"x" * 100_000
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()
            async with self.changed:
                self.changed.notify_all()

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/"


@pytest.fixture
async def servers() -> AsyncIterator[tuple[TinyServer, TinyServer]]:
    a, b = TinyServer(), TinyServer()
    a.server = await asyncio.start_server(a.handle, "127.0.0.1", 0)
    b.server = await asyncio.start_server(b.handle, "127.0.0.1", 0)
    yield a, b
    for s in (a, b):
        assert s.server is not None
        s.server.close()


async def settle(transport: PeerTransport, server: TinyServer, open_now: int) -> None:
    sweeping = transport._sweeping
    if sweeping is not None:
        await sweeping
    async with asyncio.timeout(5), server.changed:  # the server sees the close on its next read
        await server.changed.wait_for(lambda: server.open == open_now)


def clocked() -> tuple[list[float], PeerTransport]:
    """A transport on a clock the test moves."""
    clock = [0.0]
    return clock, PeerTransport(limits=httpx.Limits(), clock=lambda: clock[0])


async def test_a_peer_left_idle_has_its_connections_closed(
    servers: tuple[TinyServer, TinyServer],
) -> None:
    a, b = servers
    clock, transport = clocked()
    async with httpx.AsyncClient(transport=transport) as client:
        assert (await client.get(a.url)).status_code == 200
        assert (await client.get(b.url)).status_code == 200
        assert (a.open, b.open) == (1, 1)  # kept alive
        clock[0] = 20.0  # A idle for 20 s; using B sweeps
        assert (await client.get(b.url)).status_code == 200
        await settle(transport, a, 0)
        assert b.open == 1
        assert (await client.get(a.url)).status_code == 200  # a new pool for A


async def test_a_response_still_being_read_keeps_its_pool(
    servers: tuple[TinyServer, TinyServer],
) -> None:
    a, b = servers
    clock, transport = clocked()
    async with httpx.AsyncClient(transport=transport) as client:
        async with client.stream("GET", a.url) as response:
            clock[0] = 20.0
            assert (await client.get(b.url)).status_code == 200  # a sweep, A is busy
            sweeping = transport._sweeping
            assert sweeping is not None
            await sweeping
            assert len(await response.aread()) == 100_000
        clock[0] = 40.0  # closed at 20 s, idle since: the next sweep takes it
        assert (await client.get(b.url)).status_code == 200
        await settle(transport, a, 0)


async def test_forward_sends_what_the_router_has_with_host_and_framing_added() -> None:
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        body = b""
        if b"chunked" in head:
            body = await reader.readuntil(b"0\r\n\r\n")
        elif b"content-length: 5" in head:
            body = await reader.readexactly(5)
        seen.append(head + body)
        writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    async def parts() -> AsyncIterator[bytes]:
        yield b"ab"
        yield b"c"

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = PeerTransport(limits=httpx.Limits())
    try:
        base = f"http://127.0.0.1:{port}/edge-prefix/"
        headers = [(b"x-auth-token", b"t")]
        for body in (b"hello", parts(), None):
            response = await transport.forward(base, "POST", "/image/v2?x=1", headers, body, 5)
            assert (response.status_code, await response.aread()) == (201, b"ok")
            await response.aclose()
    finally:
        await transport.aclose()
        server.close()
    sized, streamed, empty = seen
    assert sized.startswith(b"POST /edge-prefix/image/v2?x=1 HTTP/1.1\r\n")
    assert f"host: 127.0.0.1:{port}\r\n".encode() in sized
    assert sized.endswith(b"content-length: 5\r\n\r\nhello")
    assert b"transfer-encoding: chunked\r\n" in streamed
    assert streamed.endswith(b"\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n")
    assert b"content-length" not in empty and b"chunked" not in empty


async def test_an_unsupported_address_is_refused_clearly() -> None:
    transport = PeerTransport(limits=httpx.Limits())
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.UnsupportedProtocol):
            await client.get("ftp://127.0.0.1:21/x")
    with pytest.raises(httpx.UnsupportedProtocol):
        await transport.forward("ftp://127.0.0.1:21", "GET", "/x", [], None, 1.0)


async def test_an_answer_without_end_is_cut_off_unless_the_caller_streams_it() -> None:
    """A hostile peer answering forever fills no memory: read whole, an answer is cut
    off at the limit; a caller that streams (an image download) says it bounds it."""
    sent: list[int] = []
    hung_up = asyncio.Condition()

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n")
        total = 0
        try:
            for _ in range(4096):  # at most 256 MiB, until the reader hangs up
                writer.write(b" " * (64 * 1024))
                await writer.drain()
                total += 64 * 1024
        except ConnectionError:
            pass
        finally:
            writer.close()
            async with hung_up:
                sent.append(total)
                hung_up.notify_all()

    server = await asyncio.start_server(endless, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/edge/v1/gossip"
    transport = PeerTransport(limits=httpx.Limits())
    try:
        async with httpx.AsyncClient(transport=transport) as client:
            with pytest.raises(httpx.RemoteProtocolError, match="longer than 16777216 bytes"):
                await client.get(url)
            with pytest.raises(httpx.RemoteProtocolError, match="longer than 1000 bytes"):
                await client.get(url, extensions={"max_answer_bytes": 1000})
            async with client.stream("GET", url, extensions={"max_answer_bytes": None}) as r:
                seen = 0
                async for chunk in r.aiter_raw():
                    seen += len(chunk)
                    if seen > 32 << 20:
                        break
            assert seen > 32 << 20  # past the default: this caller bounds it
    finally:
        server.close()
    async with asyncio.timeout(10), hung_up:  # the server sees each hang-up on a write
        await hung_up.wait_for(lambda: len(sent) == 3)
    assert max(sent[:2]) < 64 << 20, sent  # the reader hung up: not the 256 MiB offered
