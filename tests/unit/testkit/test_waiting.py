"""The one way the suite waits (``testkit.wait``): a condition already true costs no
wait, one that turns true is seen within a poll or two, and one that never does fails
the test naming what did not happen, at its deadline and not before."""

from __future__ import annotations

import threading
import time

import pytest

from edgefed.testkit.wait import eventually, until


async def test_a_condition_already_true_is_not_waited_for() -> None:
    calls = 0

    async def true() -> bool:
        nonlocal calls
        calls += 1
        return True

    assert await eventually(true, within=5) < 0.05
    assert calls == 1


async def test_a_condition_that_turns_true_is_seen_on_a_later_poll() -> None:
    polls: list[int] = []

    async def third_time() -> bool:
        polls.append(len(polls))
        return len(polls) == 3

    took = await eventually(third_time, within=5, every=0.01)
    assert polls == [0, 1, 2]
    assert 0.015 <= took < 2


async def test_a_condition_never_met_fails_naming_it_at_the_deadline() -> None:
    async def never() -> bool:
        return False

    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"^the spawn answered not met within 0\.2 s$"):
        await eventually(never, within=0.2, every=0.02, what="the spawn answered")
    assert 0.2 <= time.monotonic() - started < 2


def test_until_waits_for_another_thread() -> None:
    done = threading.Event()
    timer = threading.Timer(0.05, done.set)
    timer.start()
    try:
        assert until(done.is_set, within=5, every=0.01) >= 0.04
    finally:
        timer.cancel()
    with pytest.raises(AssertionError, match=r"^the site ready not met within 0\.1 s$"):
        until(lambda: None, within=0.1, every=0.02, what="the site ready")
