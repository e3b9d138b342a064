"""When to try a failed task again. Decides only; never sleeps."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with equal jitter: spreads retries without ever retrying at once."""

    base: float = 1.0
    cap: float = 300.0
    max_attempts: int = 10

    def next_delay(self, attempts: int, rng: random.Random | None = None) -> float:
        """Delay after the `attempts`-th failed attempt (1-based)."""
        ceiling = min(self.cap, self.base * 2 ** max(attempts - 1, 0))
        return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)

    def exhausted(self, attempts: int) -> bool:
        return attempts >= self.max_attempts
