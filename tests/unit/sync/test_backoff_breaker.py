"""Backoff delays and the per-peer breaker, driven by a fake clock (no sleeps)."""

from __future__ import annotations

import random

import pytest
from sync_support import FakeClock

from edgefed.sync.backoff import Backoff
from edgefed.sync.breaker import CLOSED, HALF_OPEN, OPEN, Breaker


def test_backoff_grows_then_repeats_its_last_delay_within_jitter() -> None:
    backoff = Backoff((0.5, 1, 2, 4), jitter=0.2)
    rng = random.Random(7)
    delays = [backoff.delay(n, rng=rng) for n in range(1, 8)]
    for got, base in zip(delays, (0.5, 1, 2, 4, 4, 4, 4), strict=True):
        assert base * 0.8 <= got <= base * 1.2
    assert len({round(d, 6) for d in delays[3:]}) > 1  # jittered, not identical


def test_backoff_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        Backoff(())


def test_breaker_opens_after_threshold_probes_after_cooldown_and_closes() -> None:
    clock = FakeClock(1000.0)
    breaker = Breaker(threshold=3, cooldown=5.0, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state == CLOSED
    breaker.record_failure()
    assert breaker.state == OPEN
    assert not breaker.allow()
    assert breaker.wait_time() == pytest.approx(5.0)
    clock.now += 5.0
    assert breaker.allow()  # the one probe
    assert breaker.state == HALF_OPEN
    assert not breaker.allow()  # no second probe while the first is out
    breaker.record_success()
    assert breaker.state == CLOSED
    assert breaker.allow()


def test_a_failed_probe_reopens_with_a_longer_cooldown() -> None:
    clock = FakeClock(1000.0)
    breaker = Breaker(threshold=1, cooldown=2.0, max_cooldown=5.0, clock=clock)
    breaker.record_failure()
    clock.now += 2.0
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == OPEN
    clock.now += 3.0
    assert not breaker.allow()
    clock.now += 1.0
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.wait_time() == pytest.approx(5.0)  # capped
