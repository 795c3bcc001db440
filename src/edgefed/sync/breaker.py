"""A per-peer circuit breaker: stop pushing to a peer that is down, probe, resume.

closed    pushes flow; ``threshold`` consecutive failures open the breaker.
open      nothing is sent until ``cooldown`` has passed since it opened.
half-open one probe push is allowed; success closes the breaker, failure re-opens it
          (with the cool-down doubled, up to ``max_cooldown``).

The clock is injected, so the tests drive it without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


@dataclass
class Breaker:
    threshold: int = 3
    cooldown: float = 5.0
    max_cooldown: float = 60.0
    clock: Callable[[], float] = time.monotonic
    state: str = CLOSED
    failures: int = 0
    opened_at: float = 0.0
    current_cooldown: float = field(init=False)
    probing: bool = False

    def __post_init__(self) -> None:
        self.current_cooldown = self.cooldown

    def allow(self) -> bool:
        """May a push start now? In half-open, only one probe at a time."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN and self.clock() - self.opened_at >= self.current_cooldown:
            self.state = HALF_OPEN
            self.probing = False
        if self.state == HALF_OPEN and not self.probing:
            self.probing = True
            return True
        return False

    def wait_time(self) -> float:
        """Seconds until ``allow()`` may say yes (0 if it may now)."""
        if self.state != OPEN:
            return 0.0
        return max(0.0, self.opened_at + self.current_cooldown - self.clock())

    def record_success(self) -> None:
        self.state = CLOSED
        self.failures = 0
        self.probing = False
        self.current_cooldown = self.cooldown

    def record_failure(self) -> None:
        self.failures += 1
        if self.state == HALF_OPEN:
            self.current_cooldown = min(self.current_cooldown * 2, self.max_cooldown)
            self._open()
        elif self.state == CLOSED and self.failures >= self.threshold:
            self._open()

    def _open(self) -> None:
        self.state = OPEN
        self.opened_at = self.clock()
        self.probing = False
