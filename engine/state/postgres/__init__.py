"""The shared backend: one PostgreSQL database, any number of engine processes.

Every node sees the same queue, policies, resyncs, telemetry and audit log;
there is no state-dir lock (engines on one database are the point), so what
SQLite's lock prevents (two engines copying everything twice) is prevented
here by leases: per key in the queue, per policy for scans (engine/state/postgres/leases.py).
Aliases, with their secrets, stay in each node's state dir (docs/postgres.md).
"""

from __future__ import annotations

from engine.state.postgres.database import connect, split_options
from engine.state.postgres.leases import PostgresLeases
from engine.state.postgres.nodes import Membership, new_node_id
from engine.state.postgres.policies import PostgresPolicyStore
from engine.state.postgres.queue import PostgresQueue
from engine.state.postgres.records import PostgresAuditLog, PostgresTelemetryStore
from engine.state.postgres.resyncs import PostgresResyncStore
from engine.state.postgres.wakeups import Wakeups
from engine.state.stores import State


async def open_postgres(url: str, engine: bool = False) -> State:
    """Open the database at `url`; with `engine`, join the cluster as a node now."""
    _, lease = split_options(url)
    db = await connect(url)
    node = new_node_id()
    wakeups = Wakeups(db.dsn)
    membership = Membership(db, node, lease)
    queue = PostgresQueue(db, node, wakeups)
    membership.queue = queue
    queue.joined = membership.join
    closed = False

    async def close() -> None:
        nonlocal closed
        if closed:
            return
        closed = True
        try:
            await membership.stop()
            await wakeups.close()
        finally:
            await db.close()

    queue.closer = close
    if engine:
        await membership.join()
    return State(
        where=db.where,
        queue=queue,
        policies=PostgresPolicyStore(db),
        resyncs=PostgresResyncStore(db),
        telemetry=PostgresTelemetryStore(db),
        audit=PostgresAuditLog(db),
        _close=close,
        nodes=membership,
        leases=PostgresLeases(db, node, lease),
    )
