"""The inter-site HTTP/1.1 pool (api/http1.py) against a scripted loopback server:
streaming, framing, keep-alive and the transport errors (http1_kit.py runs every test
on asyncio's and uvloop's loops).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from http1_kit import PauseSpy, Scripted, answer, echo, pool, read_request, serving

from edgefed.api.http1_connection import HIGH_WATER


def test_answers_reuse_one_kept_alive_connection(run: Any) -> None:
    async def main() -> None:
        async with serving(echo) as (server, client):
            first = await client.get(server.url + "/a?x=1")
            second = await client.post(server.url + "/b", content=b"hello")
            assert (first.status_code, first.content) == (200, b"/a?x=1|")
            assert second.content == b"/b|hello"
            assert first.http_version == "HTTP/1.1"
            assert server.connections == 1

    run(main())


def test_a_streamed_request_body_goes_chunked(run: Any) -> None:
    async def parts() -> AsyncIterator[bytes]:
        for piece in (b"one,", b"", b"two,", b"three"):
            yield piece

    async def main() -> None:
        async with serving(echo) as (server, client):
            response = await client.put(server.url + "/up", content=parts())
            assert response.content == b"/up|one,two,three"

    run(main())


def test_chunked_informational_and_head_answers(run: Any) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        head, _body = await read_request(reader)  # GET: 100 Continue, then a chunked 200
        writer.write(
            b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )
        head, _body = await read_request(reader)  # HEAD: a length, but no body
        assert head.startswith(b"HEAD ")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        head, _body = await read_request(reader)  # the same connection goes on
        writer.write(answer(b"after head"))
        await writer.drain()
        await reader.read()

    async def main() -> None:
        async with serving(handler) as (server, client):
            chunked = await client.get(server.url + "/c")
            assert (chunked.status_code, chunked.content) == (200, b"hello world")
            assert chunked.headers["x-a"] == "1"
            head = await client.head(server.url + "/h")
            assert (head.status_code, head.content) == (200, b"")
            assert (await client.get(server.url + "/n")).content == b"after head"
            assert server.connections == 1

    run(main())


def test_a_body_without_length_ends_with_the_connection(run: Any) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\n\r\nall of it")
        await writer.drain()

    async def main() -> None:
        async with serving(handler) as (server, client):
            assert (await client.get(server.url)).content == b"all of it"
            assert (await client.get(server.url)).content == b"all of it"
            assert server.connections == 2

    run(main())


def test_a_large_answer_streams_with_reading_paused_while_the_consumer_lags(run: Any) -> None:
    blob = bytes(range(256)) * (8 * 4096)  # 8 MiB

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(answer(blob))
        await writer.drain()
        await reader.read()

    async def main() -> None:
        async with Scripted(handler) as server:
            p = pool(server)
            response = await p.handle_async_request(httpx.Request("GET", server.url))
            exchange = response.stream._exchange  # type: ignore[attr-defined]
            connection = response.stream._conn  # type: ignore[attr-defined]
            spy = connection.transport = PauseSpy(connection.transport)
            await spy.paused.wait()  # nobody reads: the buffer fills, reading pauses
            assert HIGH_WATER < exchange.buffered < HIGH_WATER + (1 << 20)
            received = b"".join([piece async for piece in response.aiter_raw()])
            await response.aclose()
            assert received == blob
            assert len(p._idle) == 1  # read to the end: kept for the next request

    run(main())


def test_a_kept_alive_connection_closed_by_the_peer_is_retried_for_idempotent_methods(
    run: Any,
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        if n == 0:
            await read_request(reader)
            writer.write(answer(b"first"))
            await writer.drain()
            await read_request(reader)  # the second request: closed without an answer
            return
        for _ in range(10):
            await read_request(reader)
            writer.write(answer(b"again"))
            await writer.drain()

    async def main() -> None:
        async with serving(handler) as (server, client):
            assert (await client.get(server.url)).content == b"first"
            assert (await client.get(server.url)).content == b"again"  # on a new connection
            assert server.connections == 2
        async with serving(handler) as (server, client):
            assert (await client.get(server.url)).content == b"first"
            with pytest.raises(httpx.ReadError, match="without answering"):
                await client.post(server.url, content=b"not twice")
            assert server.connections == 1

    run(main())


def test_transport_failures_are_httpx_errors(run: Any) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(b"SMTP ready\r\n\r\n")
        await writer.drain()
        await reader.read()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        await reader.read()

    async def main() -> None:
        async with serving(garbage) as (server, client):
            with pytest.raises(httpx.RemoteProtocolError, match="malformed"):
                await client.get(server.url)
        async with serving(silent) as (server, client):
            with pytest.raises(httpx.ReadTimeout):
                await client.get(server.url, timeout=0.2)
        closed = Scripted(echo)
        async with closed:
            url = closed.url
        async with httpx.AsyncClient(transport=pool(server)) as client:
            with pytest.raises(httpx.ConnectError, match="cannot connect"):
                await client.get(url)

    run(main())


def test_the_connection_limit_queues_requests_and_times_them_out(run: Any) -> None:
    async def main() -> None:
        async with serving(echo, max_connections=1) as (server, client):
            held = await client.send(client.build_request("GET", server.url + "/1"), stream=True)
            with pytest.raises(httpx.PoolTimeout):
                await client.get(server.url + "/2", timeout=httpx.Timeout(5, pool=0.1))
            waiting = asyncio.create_task(client.get(server.url + "/3"))
            await asyncio.sleep(0)
            assert not waiting.done()
            assert await held.aread() == b"/1|"
            await held.aclose()
            assert (await waiting).content == b"/3|"
            assert server.connections == 1

    run(main())


def test_an_abandoned_answer_closes_its_connection(run: Any) -> None:
    async def big(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        for _ in range(10):
            await read_request(reader)
            writer.write(answer(b"x" * (4 << 20)))
            await writer.drain()

    async def main() -> None:
        async with serving(big) as (server, client):
            async with client.stream("GET", server.url) as response:
                assert response.status_code == 200  # 4 MiB, never read
            assert len((await client.get(server.url)).content) == 4 << 20
            assert server.connections == 2

    run(main())


def test_an_early_answer_to_an_unfinished_upload_is_returned(run: Any) -> None:
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await reader.readuntil(b"\r\n\r\n")  # the head only: the body is not wanted
        body = b'{"error": "too large"}'
        writer.write(
            b"HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()

    async def upload() -> AsyncIterator[bytes]:
        for _ in range(400):  # 25 MiB: more than the sockets buffer
            yield b"x" * (64 << 10)

    async def main() -> None:
        async with serving(refuse) as (server, client):
            response = await client.post(server.url + "/image", content=upload())
            assert (response.status_code, response.json()) == (413, {"error": "too large"})
            assert (await client.post(server.url + "/again", content=b"small")).status_code == 413
            assert server.connections == 2  # the first connection was not reused

    run(main())
