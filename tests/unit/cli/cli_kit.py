"""Driving the ``edgefed`` operator commands in tests: parse real argv, then run the
command in a worker thread whose HTTP goes to an in-process site (or a fake) on the
test's event loop, through ``LoopBridge``, the sync side of that seam."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from edgefed.cli.client import OperatorClient, run_command
from edgefed.cli.main import build_parser

SITE = "http://berlin.test"


class LoopBridge(httpx.BaseTransport):
    """A sync transport that hands each request to an async one on ``loop``."""

    def __init__(self, transport: httpx.AsyncBaseTransport, loop: asyncio.AbstractEventLoop):
        self.transport = transport
        self.loop = loop
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        self.requests.append(request)

        async def forward() -> tuple[int, httpx.Headers, bytes]:
            inner = httpx.Request(
                request.method, request.url, headers=request.headers, content=body
            )
            response = await self.transport.handle_async_request(inner)
            content = await response.aread()
            await response.aclose()
            return response.status_code, response.headers, content

        status, headers, content = asyncio.run_coroutine_threadsafe(forward(), self.loop).result(30)
        headers = httpx.Headers([(k, v) for k, v in headers.items() if k != "content-length"])
        return httpx.Response(status, headers=headers, content=content)


def parse(argv: list[str]) -> Any:
    return build_parser(argv).parse_args(argv)


def connection(token: str = "tok", site: str = SITE) -> list[str]:
    """The connection options, which go after the sub-command."""
    return ["--site-url", site, "--os-token", token]


async def cli(
    argv: list[str],
    command: Callable[[Any, OperatorClient], int],
    transport: httpx.AsyncBaseTransport,
) -> int:
    """Run ``command`` as ``edgefed <argv>`` would, its HTTP going to ``transport``."""
    args = parse(argv)
    bridge = LoopBridge(transport, asyncio.get_running_loop())
    return await asyncio.to_thread(run_command, args, command, transport=bridge)


def fake(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.MockTransport:
    return httpx.MockTransport(handler)
