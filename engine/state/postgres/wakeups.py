"""LISTEN/NOTIFY: a node's idle dispatchers wake when another node queues work.

One connection per process listens (a pooled one cannot: the pool hands it to
others). Losing it costs latency only: dispatchers still poll twice a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import asyncpg

from engine.shielded import shielded
from engine.state.postgres.schema import CHANNEL

log = logging.getLogger("mirrorline.state.postgres")


class Wakeups:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._callbacks: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None

    def add(self, wake: Callable[[], None]) -> None:
        self._callbacks.append(wake)
        if self._task is None:
            self._task = asyncio.create_task(self._listen())

    def _notified(self, *_: object) -> None:
        for wake in self._callbacks:
            wake()

    async def _listen(self) -> None:
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(self._dsn)
                await conn.add_listener(CHANNEL, self._notified)
                await self._until_closed(conn)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("queue notifications unavailable, polling meanwhile: %s", exc)
            finally:
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await shielded(conn.close())
            await asyncio.sleep(2.0)

    @staticmethod
    async def _until_closed(conn: asyncpg.Connection) -> None:
        closed = asyncio.Event()
        conn.add_termination_listener(lambda _: closed.set())
        await closed.wait()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
