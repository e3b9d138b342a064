"""Membership: each engine process is a row in `nodes`, kept alive by its heartbeat.

The heartbeat is the lease: every lease/3 seconds a node stamps its row from
the database's clock, renews its tasks' leases that are near their end, and
sweeps (any node may) the leases of nodes not heard from within their lease,
so a killed node's work is taken over by the others within one lease time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid

import asyncpg

from engine.state.postgres.database import Database
from engine.state.postgres.queue import PostgresQueue
from engine.state.postgres.schema import NOW
from engine.state.stores import Node, NodeStore

log = logging.getLogger("mirrorline.state.postgres")
FORGET_AFTER = 3600.0  # a stopped or gone node is listed for this long


def new_node_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Membership(NodeStore):
    def __init__(self, db: Database, node: str, lease: float) -> None:
        self._db = db
        self.node = node
        self.lease = lease
        self.queue: PostgresQueue | None = None
        self._figures = (0, 0.0, 0, 0, 0)
        self._task: asyncio.Task[None] | None = None
        self._started = time.time()

    async def join(self) -> None:
        """Join the cluster (idempotent): register now, then heartbeat until `stop`."""
        if self._task is None:
            await self._beat()
            self._task = asyncio.create_task(self._run())

    async def report(
        self, workers: int, rate: float, in_flight: int, replicated: int, replicated_bytes: int
    ) -> None:
        self._figures = (workers, rate, in_flight, replicated, replicated_bytes)

    async def _beat(self) -> None:
        await self._db.execute(
            "INSERT INTO nodes (id, host, pid, started_at, heartbeat_at, lease, workers, rate, "
            f"in_flight, replicated, replicated_bytes) VALUES ($1, $2, $3, $4, {NOW}, $5, $6, $7, "
            "$8, $9, $10) ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, "
            "workers = excluded.workers, rate = excluded.rate, in_flight = excluded.in_flight, "
            "replicated = excluded.replicated, replicated_bytes = excluded.replicated_bytes",
            self.node,
            socket.gethostname(),
            os.getpid(),
            self._started,
            self.lease,
            *self._figures,
        )

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                await self._beat()
                # Renew only leases that would end before two more beats: usually none.
                await self._db.execute(
                    f"UPDATE tasks SET lease_until = {NOW} + $2 WHERE state = 'in-flight' "
                    f"AND claimed_by = $1 AND lease_until < {NOW} + $2 / 1.5",
                    self.node,
                    self.lease,
                )
                if self.queue is not None and (swept := await self.queue.recover()):
                    log.warning("took over %d leases of nodes no longer heard from", swept)
                await self._db.execute(
                    f"DELETE FROM nodes WHERE greatest(heartbeat_at, stopped_at) < {NOW} - $1",
                    FORGET_AFTER,
                )
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("heartbeat failed: %s", exc)

    async def all(self) -> list[Node]:
        rows = await self._db.rows(
            "SELECT id, host, pid, started_at, heartbeat_at, CASE WHEN stopped_at IS NOT NULL "
            f"THEN 'stopped' WHEN heartbeat_at + lease < {NOW} THEN 'gone' ELSE 'up' END AS state, "
            "workers, rate, in_flight, replicated, replicated_bytes FROM nodes "
            "ORDER BY started_at, id"
        )
        return [Node(*r.values()) for r in rows]

    async def stop(self) -> None:
        """Leave: stop beating and say so, so the others take over at once."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            await self._db.execute(
                f"UPDATE nodes SET stopped_at = {NOW}, in_flight = 0, rate = 0 WHERE id = $1",
                self.node,
            )
