"""The pool's keep-alive rules (api/http1.py): how long and how many connections are
kept, which ones are never reused, what is checked once per connection, what a retry
may resend, and what closing the pool does to those waiting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from http1_kit import Scripted, answer, echo, read_request

from edgefed.api.http1 import Http1Pool


class Clock:
    """The pool's clock, moved by hand: idle time without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pool_for(server: Scripted, *, clock: Clock | None = None, **options: Any) -> Http1Pool:
    limits = {k: options.pop(k) for k in list(options) if k.startswith(("max_", "keepalive"))}
    return Http1Pool(
        host="127.0.0.1", port=server.port, tls=None, limits=httpx.Limits(**limits),
        clock=clock or Clock(), **options,
    )  # fmt: skip


def test_an_idle_connection_is_reused_until_it_expires(run: Any) -> None:
    async def main() -> None:
        clock = Clock()
        async with Scripted(echo) as server:
            async with httpx.AsyncClient(
                transport=pool_for(server, clock=clock, keepalive_expiry=5.0)
            ) as client:
                await client.get(server.url + "/1")
                clock.now += 4.9
                await client.get(server.url + "/2")
                assert server.connections == 1
                clock.now += 5.0  # idle for its whole expiry since the last answer
                assert (await client.get(server.url + "/3")).content == b"/3|"
                assert server.connections == 2

    run(main())


def test_idle_connections_beyond_the_keepalive_limit_are_closed(run: Any) -> None:
    async def main() -> None:
        async with Scripted(echo) as server:
            transport = pool_for(server, max_keepalive_connections=1)
            async with httpx.AsyncClient(transport=transport) as client:
                both = await asyncio.gather(
                    *(client.send(client.build_request("GET", server.url + f"/{n}"), stream=True)
                      for n in range(2))
                )  # fmt: skip
                for response in both:
                    await response.aread()
                    await response.aclose()
                assert server.connections == 2 and len(transport._idle) == 1
                await asyncio.gather(*(client.get(server.url) for _ in range(2)))
                assert server.connections == 3  # one kept, one opened again

    run(main())


def test_an_answer_saying_close_or_sending_extra_bytes_is_not_reused(run: Any) -> None:
    async def closing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        if n == 0:
            writer.write(answer(b"bye", b"Connection: close"))
        else:  # an answer, then bytes nobody asked for
            writer.write(answer(b"one") + answer(b"two"))
        await writer.drain()
        await reader.read()

    async def main() -> None:
        async with Scripted(closing) as server:
            async with httpx.AsyncClient(transport=pool_for(server)) as client:
                assert (await client.get(server.url)).content == b"bye"
                assert (await client.get(server.url)).content == b"one"
                assert (await client.get(server.url)).content == b"one"
                assert server.connections == 3

    run(main())


def test_a_new_connection_is_checked_once_and_refused_by_raising(run: Any) -> None:
    checked: list[object] = []

    def check(transport: asyncio.BaseTransport) -> None:
        checked.append(transport)
        if len(checked) > 1:
            raise httpx.ConnectError("the peer's key is not the pinned one")

    async def main() -> None:
        async with Scripted(echo) as server:
            async with httpx.AsyncClient(transport=pool_for(server, check=check)) as client:
                await client.get(server.url + "/1")
                await client.get(server.url + "/2")  # kept alive: not checked again
                assert len(checked) == 1
                held = await client.send(client.build_request("GET", server.url), stream=True)
                with pytest.raises(httpx.ConnectError, match="pinned"):
                    await client.get(server.url)  # the first is busy: a new one, refused
                await held.aclose()
                assert (await client.get(server.url + "/3")).content == b"/3|"

    run(main())


def test_a_retry_resends_only_what_can_be_sent_again(run: Any) -> None:
    async def drop_second(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int
    ) -> None:
        for count in range(10):
            head, body = await read_request(reader)
            if n == 0 and count == 1:
                return  # closed without answering the second request
            writer.write(answer(head.split(b" ")[0] + b" " + body))
            await writer.drain()

    async def stream() -> AsyncIterator[bytes]:
        yield b"streamed"

    async def main() -> None:
        async with Scripted(drop_second) as server:
            async with httpx.AsyncClient(transport=pool_for(server)) as client:
                await client.get(server.url)
                put = await client.put(server.url, content=b"again")  # idempotent, replayable
                assert put.content == b"PUT again" and server.connections == 2
        async with Scripted(drop_second) as server:
            async with httpx.AsyncClient(transport=pool_for(server)) as client:
                await client.get(server.url)
                with pytest.raises(httpx.ReadError):  # a stream cannot be sent twice
                    await client.put(server.url, content=stream())

    run(main())


def test_the_peer_stopping_mid_answer_is_an_error_not_a_short_body(run: Any) -> None:
    async def short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
        await writer.drain()

    async def stalled(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nten bytes.")
        await writer.drain()
        await reader.read()

    async def main() -> None:
        async with Scripted(short) as server:
            async with httpx.AsyncClient(transport=pool_for(server)) as client:
                with pytest.raises(httpx.RemoteProtocolError, match="mid-answer"):
                    await client.get(server.url)
        async with Scripted(stalled) as server:
            async with httpx.AsyncClient(transport=pool_for(server)) as client:
                with pytest.raises(httpx.ReadTimeout, match="stopped sending"):
                    await client.get(server.url, timeout=0.2)

    run(main())


def test_an_upgrade_is_refused_as_a_protocol_error(run: Any) -> None:
    async def upgrade(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"
        )
        await writer.drain()
        await reader.read()

    async def main() -> None:
        async with Scripted(upgrade) as server:
            async with httpx.AsyncClient(transport=pool_for(server)) as client:
                with pytest.raises(httpx.RemoteProtocolError):
                    await client.get(server.url)

    run(main())


def test_closing_the_pool_fails_its_waiters_and_drops_what_comes_back(run: Any) -> None:
    async def main() -> None:
        async with Scripted(echo) as server:
            transport = pool_for(server, max_connections=1)
            client = httpx.AsyncClient(transport=transport)
            held = await client.send(client.build_request("GET", server.url), stream=True)
            waiting = asyncio.create_task(client.get(server.url + "/w"))
            await asyncio.sleep(0)  # let it queue for the only connection
            transport.close()
            with pytest.raises(httpx.PoolTimeout, match="closed"):
                await waiting
            await held.aread()
            await held.aclose()
            assert transport._idle == [] and transport._count == 0
            await client.aclose()

    run(main())
