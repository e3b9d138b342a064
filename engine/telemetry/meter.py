"""Transfer rates over a sliding window, counted as bytes stream (not only when a copy ends)."""

from __future__ import annotations

import time
from collections import deque


class Meter:
    """Bytes and objects per second over the last `window` seconds, in 1 s buckets."""

    def __init__(self, window: int = 10) -> None:
        self.window = window
        self._buckets: deque[list[float]] = deque()  # [second, bytes, objects]

    def _bucket(self, now: float) -> list[float]:
        second = float(int(now))
        if not self._buckets or self._buckets[-1][0] != second:
            self._buckets.append([second, 0.0, 0.0])
            while self._buckets and self._buckets[0][0] <= second - self.window:
                self._buckets.popleft()
        return self._buckets[-1]

    def add(self, nbytes: int = 0, objects: int = 0, now: float | None = None) -> None:
        bucket = self._bucket(now or time.time())
        bucket[1] += nbytes
        bucket[2] += objects

    def rate(self, now: float | None = None) -> tuple[float, float]:
        """(bytes/s, objects/s) over the complete seconds of the window."""
        now = now or time.time()
        current = float(int(now))
        done = [b for b in self._buckets if current - self.window <= b[0] < current]
        nbytes = sum(b[1] for b in done) / self.window
        objects = sum(b[2] for b in done) / self.window
        return nbytes, objects
