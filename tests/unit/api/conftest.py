"""Fixtures of the api tests: ``run``, a coroutine run to the end on each event loop a
site may use (asyncio's and uvloop's: their transports differ, uvloop's is not an
``asyncio.Transport`` subclass), for the inter-site client and TLS tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

Run = Callable[[Coroutine[Any, Any, None]], None]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Run:
    factory = uvloop.new_event_loop if request.param == "uvloop" else asyncio.new_event_loop

    def runner(coro: Coroutine[Any, Any, None]) -> None:
        with asyncio.Runner(loop_factory=factory) as r:
            r.run(asyncio.wait_for(coro, 20))

    return runner
