"""Waiting for a condition, bounded: the one way tests wait for something to happen.

Not a synchronisation sleep: the condition is what the test asserts, polled until it
holds or the deadline passes (then AssertionError names what did not happen). Use an
event instead wherever the code offers one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def eventually(
    check: Callable[[], Awaitable[bool]],
    *,
    within: float = 15.0,
    every: float = 0.05,
    what: str = "condition",
) -> float:
    """Await ``check()`` until it is true; the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        if await check():
            return time.monotonic() - started
        await asyncio.sleep(every)
    raise AssertionError(f"{what} not met within {within} s")


def until(
    check: Callable[[], object],
    *,
    within: float = 60.0,
    every: float = 0.2,
    what: str = "condition",
) -> float:
    """Call ``check()`` (real processes, another thread) until it is truthy; the seconds
    it took."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        if check():
            return time.monotonic() - started
        time.sleep(every)
    raise AssertionError(f"{what} not met within {within} s")
