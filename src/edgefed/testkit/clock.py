"""A clock that moves only when the test moves it: deadlines, expiry and backoff are
tested by setting ``now``, never by sleeping."""

from __future__ import annotations


class FakeClock:
    """Seconds since the epoch, as ``time.time`` gives them, moved by hand."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
