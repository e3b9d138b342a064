"""When bytes may go on: a line's pace (throttle) and chunks held until due (delay).

Both keep the fault proxy's faults honest under load: a throttled line never
bursts after an idle spell, and a delay adds latency without becoming a
throughput cap.
"""

from __future__ import annotations

import asyncio
from collections import deque

HELD = 8 * 1024 * 1024  # bytes per direction a delay may hold back: 8 MiB / 300 ms ~ 27 MiB/s
Chunk = tuple[float, bytes, bool]  # (due time, data, reset after it); b"" is the end of stream


class Line:
    """A line of `rate` bytes/s: each chunk goes out once the ones before it are through.

    Unlike the engine's TokenBucket (a limit that lets an idle policy burst for a
    second), a line never runs faster than its rate, idle or not: after a quiet
    minute a 256 KiB/s link still takes 4 s for a MiB.
    """

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._free_at = 0.0  # loop time when the line has sent everything given to it

    async def send(self, nbytes: int) -> None:
        """Wait until the line is free, then hold it for `nbytes`. Waking up late does
        not cost the line time: the next chunk starts when this one would have ended."""
        now = asyncio.get_running_loop().time()
        start = max(now, self._free_at)
        self._free_at = start + nbytes / self.rate
        if start > now:
            await asyncio.sleep(start - now)


class Held:
    """Chunks read but not yet due, first in first out, at most HELD bytes of them.

    Bounded in bytes, not chunks, because socket reads come in any size: a
    budget counted in chunks would cap a delayed link at chunks x read size.
    """

    def __init__(self) -> None:
        self._chunks: deque[Chunk] = deque()
        self._bytes = 0
        self._changed = asyncio.Condition()

    async def put(self, chunk: Chunk) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._bytes < HELD)
            self._chunks.append(chunk)
            self._bytes += len(chunk[1])
            self._changed.notify_all()

    async def get(self) -> Chunk:
        async with self._changed:
            await self._changed.wait_for(lambda: bool(self._chunks))
            chunk = self._chunks.popleft()
            self._bytes -= len(chunk[1])
            self._changed.notify_all()
            return chunk
