"""The engine-wide budget of multipart bytes in flight.

Parts are streamed (a ranged GET straight into the part upload), so a part in
flight holds a socket's read buffer, not its bytes. The budget still counts
each part at its full length: it bounds how many parts run at once across all
transfers (each a GET and a PUT connection with their buffers), in the unit an
operator sizes it in. Takers are served first come, first served.
"""

from __future__ import annotations

import asyncio
from collections import deque


class ByteBudget:
    """Up to `capacity` bytes taken at once; a taker waits until its share is free."""

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("a byte budget needs a positive capacity")
        self.capacity = capacity
        self.free = capacity
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def take(self, nbytes: int) -> int:
        """Wait for `nbytes` (at most the whole budget) and take them. Returns the bytes
        taken: what `give` must hand back."""
        wanted = min(nbytes, self.capacity)
        if not self._waiters and self.free >= wanted:
            self.free -= wanted
            return wanted
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append((wanted, waiter))
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.give(wanted)  # granted, then cancelled before it could run
            else:
                self._waiters.remove((wanted, waiter))
                self._serve()
            raise
        return wanted

    def give(self, nbytes: int) -> None:
        """Hand back bytes taken (no await: safe in a `finally` of a cancelled task)."""
        self.free += nbytes
        self._serve()

    def _serve(self) -> None:
        while self._waiters and self._waiters[0][0] <= self.free:
            wanted, waiter = self._waiters.popleft()
            if not waiter.done():
                self.free -= wanted
                waiter.set_result(None)
