"""Handing the C heap back (core/heap.py): once, after the last of a burst of asks."""

from __future__ import annotations

import asyncio

import pytest

from edgefed.core import heap


async def test_the_heap_goes_back_once_a_burst_is_over(monkeypatch: pytest.MonkeyPatch) -> None:
    released: list[float] = []
    loop = asyncio.get_running_loop()
    monkeypatch.setattr(heap, "release_free_heap", lambda: released.append(loop.time()))
    release = heap.HeapRelease(after=0.05)
    started = loop.time()
    for _ in range(5):  # a burst of password checks: the memory stays for the next one
        release.soon()
        await asyncio.sleep(0.01)
    assert released == []
    await asyncio.sleep(0.1)
    assert len(released) == 1
    assert released[0] - started >= 0.04 + 0.05  # after the last ask, not the first
    release.soon()
    await asyncio.sleep(0.1)
    assert len(released) == 2


def test_handing_the_heap_back_is_harmless_anywhere() -> None:
    heap.one_heap()  # threads started by this test process share the main heap now
    heap.release_free_heap()
