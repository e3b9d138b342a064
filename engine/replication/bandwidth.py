"""Bandwidth limits: one token bucket per policy, shared by all its transfers.

Each send reserves its bytes first and sleeps off the debt, so concurrent
workers queue fairly behind each other and the long-run rate holds at the
limit. The bucket starts empty and refills to at most one second of bytes,
so an idle link allows a one-second burst and no more.
"""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    def __init__(self, rate: float) -> None:
        self.rate = float(rate)
        self._tokens = 0.0
        self._last = time.monotonic()

    def set_rate(self, rate: float) -> None:
        self._refill()
        self.rate = float(rate)

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.rate, self._tokens + (now - self._last) * self.rate)
        self._last = now

    @property
    def saturated(self) -> bool:
        """Senders are sleeping off a debt: the limit, not the link, sets the pace now."""
        if self.rate <= 0:
            return False
        self._refill()
        return self._tokens < 0

    async def take(self, nbytes: int) -> None:
        """Wait until `nbytes` may be sent without exceeding the rate."""
        if self.rate <= 0:
            return
        self._refill()
        self._tokens -= nbytes
        if self._tokens < 0:
            await asyncio.sleep(-self._tokens / self.rate)
