"""Retry delays as data: the n-th retry waits ``delays[n]`` (the last repeats), jittered.

Jitter spreads the retries of many resources and many sites that failed together
(a link that came back), so they do not all hit the peer in the same instant.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    delays: Sequence[float] = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
    # Each delay is multiplied by a factor drawn from [1 - jitter, 1 + jitter].
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not self.delays or any(d < 0 for d in self.delays):
            raise ValueError("backoff delays must be a non-empty list of non-negative seconds")

    def delay(self, attempt: int, *, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1 = the first)."""
        base = self.delays[min(max(attempt, 1), len(self.delays)) - 1]
        factor = 1.0 + (rng or random).uniform(-self.jitter, self.jitter)
        return base * factor
