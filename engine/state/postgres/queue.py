"""PostgreSQL backend of the queue, for several engine processes on several machines.

A claim is one statement (`_CLAIM`): ready tasks of keys not in flight,
`FOR UPDATE SKIP LOCKED` (claimers never wait on each other's rows), then a
`busy` row per key with ON CONFLICT DO NOTHING (the primary key settles two
nodes racing for one key), then the lease on each key's run of versions. Leases belong to a node: its
heartbeat (engine/state/postgres/nodes.py) renews them, and `recover` hands
back those of nodes no longer heard from. Counters follow by trigger
(engine/state/postgres/schema.py).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

import asyncpg

from engine.model import Completion, NewTask, Op, Outcome, Task, TaskState
from engine.state.postgres.database import Database, changed
from engine.state.postgres.reads import COLUMNS, QueueReads, task_of
from engine.state.postgres.schema import CHANNEL, NOW, SHARDS
from engine.state.postgres.wakeups import Wakeups
from engine.state.queue import TaskQueue

# A node is live while it heartbeats; an in-flight task is held while its lease runs
# and its node is live. Anything else is handed back by `recover`.
_LIVE = f"SELECT id FROM nodes WHERE stopped_at IS NULL AND heartbeat_at + lease >= {NOW}"


async def _nothing() -> None:
    return None


def columns(tasks: Sequence[NewTask]) -> list[list[object]]:
    """New tasks as parallel arrays, for one `unnest` insert however many there are."""
    return [
        [t.policy for t in tasks],
        [t.key for t in tasks],
        [t.version_id for t in tasks],
        [t.op.value for t in tasks],
        [t.size for t in tasks],
        [t.etag for t in tasks],
        [t.src_mtime for t in tasks],
        [t.seq for t in tasks],
        [t.target_version for t in tasks],
        [t.target_has_key for t in tasks],
    ]


def insert_sql(condition: str, resync: str = "0") -> str:
    """Insert unnested new tasks ($1..$10, now $11) where `condition` holds for `u`."""
    names = (
        "policy, key, version_id, op, size, etag, src_mtime, seq, target_version, target_has_key"
    )
    mapped = (
        "SELECT 1 FROM replicas r WHERE r.policy = u.policy AND r.key = u.key "
        "AND r.source_version = u.version_id"
    )
    where = {
        "copy": f"NOT EXISTS ({mapped} AND (u.target_version = '' "
        "OR r.target_version IS DISTINCT FROM u.target_version))",
        "delete": f"EXISTS ({mapped} AND r.target_version = u.target_version)",
        "resync": f"NOT EXISTS ({mapped})",
        "plain": "TRUE",
    }[condition]
    types = ("text", "text", "text", "text", "bigint", "text", "float8", "int", "text", "bool")
    arrays = ", ".join(f"${i}::{kind}[]" for i, kind in enumerate(types, 1))
    return (
        f"INSERT INTO tasks ({names}, next_at, created_at, updated_at, resync) "
        f"SELECT u.*, $11, $11, $11, {resync} FROM unnest({arrays}) AS u({names}) "
        f"WHERE {where} ON CONFLICT DO NOTHING"
    )


# Per policy: the oldest ready tasks of keys not in flight, locked (SKIP LOCKED: never
# waiting on another claimer); of those, each key's run that no older ready task outside
# this batch precedes (another node may have locked that one: it goes first); then one
# busy row per key, which only one claimer can insert; then the lease on the key's run.
_CLAIM = (
    "WITH ready AS (SELECT t.id, t.policy, t.key FROM tasks t "
    "WHERE t.policy = $1 AND t.state IN ('pending', 'retrying') AND t.next_at <= $2 "
    "AND NOT EXISTS (SELECT 1 FROM busy b WHERE b.policy = t.policy AND b.key = t.key) "
    "ORDER BY t.next_at, t.id LIMIT $3 FOR UPDATE OF t SKIP LOCKED), "
    "runs AS (SELECT r.* FROM ready r WHERE NOT EXISTS (SELECT 1 FROM tasks o "
    "WHERE o.policy = r.policy AND o.key = r.key AND o.id < r.id "
    "AND o.state IN ('pending', 'retrying') AND o.next_at <= $2 "
    "AND o.id NOT IN (SELECT id FROM ready))), "
    "heads AS (SELECT DISTINCT ON (policy, key) policy, key, id FROM runs "
    "ORDER BY policy, key, id), "
    "held AS (INSERT INTO busy (policy, key, task_id) SELECT policy, key, id FROM heads "
    "ORDER BY key ON CONFLICT DO NOTHING RETURNING policy, key) "
    "UPDATE tasks t SET state = 'in-flight', attempts = t.attempts + 1, "
    f"updated_at = $2, lease_until = {NOW} + $4, claimed_by = $5 "
    "FROM runs JOIN held ON held.policy = runs.policy AND held.key = runs.key "
    f"WHERE t.id = runs.id RETURNING {COLUMNS}"
)


async def notify(conn: asyncpg.Connection) -> None:
    """Tell idle nodes there is work (delivered at commit, once per transaction)."""
    await conn.execute("SELECT pg_notify($1, '')", CHANNEL)


class PostgresQueue(QueueReads, TaskQueue):
    """The queue in the shared database; `node` names this process's leases."""

    def __init__(self, db: Database, node: str, wakeups: Wakeups) -> None:
        super().__init__(db)
        self.node = node
        self._wakeups = wakeups
        self.joined: Callable[[], Awaitable[None]] = _nothing  # a claimer joins the cluster
        self.closer: Callable[[], Awaitable[None]] = _nothing  # the state's close

    def subscribe(self, wake: Callable[[], None]) -> None:
        self._wakeups.add(wake)

    async def enqueue(self, tasks: Sequence[NewTask]) -> int:
        """Insert new tasks; the replica map is re-checked in the statement (see SQLite's)."""
        if not tasks:
            return 0
        kinds = {Op.PUT: "copy", Op.DELETE_MARKER: "copy", Op.DELETE_VERSION: "delete"}
        groups: dict[str, list[NewTask]] = {}
        for t in tasks:
            groups.setdefault(kinds.get(t.op, "plain"), []).append(t)
        now = time.time()

        async def work(conn: asyncpg.Connection) -> int:
            added = 0
            for kind, batch in groups.items():
                added += changed(await conn.execute(insert_sql(kind), *columns(batch), now))
            if added:
                await notify(conn)
            return added

        return await self._db.tx(work)

    async def claim(self, policies: Sequence[str], limit: int, lease_seconds: float) -> list[Task]:
        await self.joined()  # leases need a heartbeat behind them, or they are swept
        now = time.time()
        tasks: list[Task] = []
        async with self._db.pool.acquire() as conn:
            for policy in policies:  # in priority order, as given
                if len(tasks) >= limit:
                    break
                rows = await conn.fetch(
                    _CLAIM,
                    policy,
                    now,
                    limit - len(tasks),
                    lease_seconds,
                    self.node,
                )
                tasks.extend(task_of(r) for r in rows)
        tasks.sort(key=lambda t: (t.next_at, t.id))
        return tasks

    async def complete(self, done: Sequence[Completion]) -> None:
        if done:
            await self._db.tx(lambda conn: self._complete(conn, done))

    async def _complete(self, conn: asyncpg.Connection, done: Sequence[Completion]) -> None:
        rows = await conn.fetch(
            "DELETE FROM tasks WHERE id = ANY($1::bigint[]) RETURNING id, resync",
            [c.task.id for c in done],
        )
        existed = {r["id"]: r["resync"] for r in rows}
        # A task whose row is gone belonged to a policy removed meanwhile (or was swept
        # and finished by another node): recording it again would count it twice.
        done = [c for c in done if c.task.id in existed]
        retried = [c.task.id for c in done if c.task.error_class]
        if retried:
            await conn.execute("DELETE FROM attempts WHERE task_id = ANY($1::bigint[])", retried)
        totals: dict[str, list[int]] = {}
        resyncs: dict[int, list[int]] = {}
        for c in done:
            agg = totals.setdefault(c.task.policy, [0, 0, 0])
            skipped = c.outcome is Outcome.SKIPPED
            if skipped:
                agg[2] += 1
            else:
                agg[0] += 1
                agg[1] += c.bytes
            if existed[c.task.id]:
                resyncs.setdefault(existed[c.task.id], [0, 0])[skipped] += 1
        for rid, (replicated, skipped) in sorted(resyncs.items()):
            await conn.execute(
                "UPDATE resyncs SET replicated = replicated + $1, skipped = skipped + $2 "
                "WHERE id = $3",
                replicated,
                skipped,
                rid,
            )
        await conn.executemany(
            "INSERT INTO totals (policy, shard, replicated, replicated_bytes, skipped) "
            f"VALUES ($1, pg_backend_pid() % {SHARDS}, $2, $3, $4) "
            "ON CONFLICT (policy, shard) DO UPDATE SET "
            "replicated = totals.replicated + excluded.replicated, "
            "replicated_bytes = totals.replicated_bytes + excluded.replicated_bytes, "
            "skipped = totals.skipped + excluded.skipped",
            [(p, *agg) for p, agg in sorted(totals.items())],
        )
        keep = [c for c in done if c.target_version is not None]
        gone = [c for c in keep if c.task.op is Op.DELETE_VERSION]
        if gone:
            await conn.executemany(
                "DELETE FROM replicas WHERE policy = $1 AND key = $2 AND source_version = $3",
                [(c.task.policy, c.task.key, c.task.version_id) for c in gone],
            )
        mapped = {
            (c.task.policy, c.task.key, c.task.version_id): (
                c.target_version or None,
                c.task.src_mtime,
                c.task.seq,
            )
            for c in keep
            if c.task.op not in (Op.DELETE_VERSION, Op.METADATA)
        }
        if mapped:  # one statement for the batch: a round trip per row is most of the cost
            rows = [(*k, *v) for k, v in sorted(mapped.items())]
            await conn.execute(
                "INSERT INTO replicas (policy, key, source_version, target_version, src_mtime, "
                "seq) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
                "$5::float8[], $6::int[]) ON CONFLICT (policy, key, source_version) "
                "DO UPDATE SET target_version = excluded.target_version, "
                "src_mtime = excluded.src_mtime, seq = excluded.seq",
                *(list(column) for column in zip(*rows, strict=True)),
            )
        await notify(conn)  # a key came free: its next version may be claimable

    async def retry_later(
        self, task: Task, error: str, error_class: str, at: float, code: str = ""
    ) -> None:
        await self._park(task, TaskState.RETRYING, error, error_class, code, at)

    async def fail(self, task: Task, error: str, error_class: str, code: str = "") -> None:
        await self._park(task, TaskState.FAILED, error, error_class, code, 0.0)

    async def _park(
        self, task: Task, state: TaskState, error: str, error_class: str, code: str, at: float
    ) -> None:
        now = time.time()

        async def work(conn: asyncpg.Connection) -> None:
            # Only the node that holds the lease parks the task: one whose lease was
            # taken over (it stalled) must not undo the new holder's work.
            status = await conn.execute(
                "UPDATE tasks SET state = $1, next_at = $2, lease_until = 0, last_error = $3, "
                "error_class = $4, error_code = $5, updated_at = $6, target_has_key = TRUE "
                "WHERE id = $7 AND claimed_by = $8",
                state.value,
                at,
                error,
                error_class,
                code,
                now,
                task.id,
                self.node,
            )
            if changed(status):
                await conn.execute(
                    "INSERT INTO attempts (task_id, n, at, kind, error) SELECT $1, "
                    "COALESCE(MAX(n), 0) + 1, $2, $3, $4 FROM attempts WHERE task_id = $1",
                    task.id,
                    now,
                    error_class,
                    error,
                )

        await self._db.tx(work)

    async def release(self, tasks: Sequence[Task]) -> None:
        if not tasks:
            return

        async def work(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "UPDATE tasks SET state = 'pending', lease_until = 0, target_has_key = TRUE, "
                "attempts = GREATEST(attempts - 1, 0), updated_at = $1 "
                "WHERE id = ANY($2::bigint[]) AND state = 'in-flight' AND claimed_by = $3",
                time.time(),
                [t.id for t in tasks],
                self.node,
            )
            await notify(conn)

        await self._db.tx(work)

    async def recover(self) -> int:
        """Hand back leases that ran out, or whose node is gone; any node may sweep."""

        async def work(conn: asyncpg.Connection) -> int:
            status = await conn.execute(
                "UPDATE tasks SET state = 'pending', lease_until = 0, target_has_key = TRUE, "
                f"updated_at = $1 WHERE state = 'in-flight' AND (lease_until < {NOW} "
                f"OR claimed_by NOT IN ({_LIVE}))",
                time.time(),
            )
            if changed(status):
                await notify(conn)
            return changed(status)

        return await self._db.tx(work)

    async def requeue(self, policy: str | None = None, ids: Sequence[int] = ()) -> int:
        where = "state IN ('failed', 'retrying')"
        args: list[object] = [time.time()]
        if policy:
            args.append(policy)
            where += f" AND policy = ${len(args)}"
        if ids:
            args.append(list(ids))
            where += f" AND id = ANY(${len(args)}::bigint[])"

        async def work(conn: asyncpg.Connection) -> int:
            status = await conn.execute(
                f"UPDATE tasks SET state = 'pending', attempts = 0, next_at = $1, updated_at = $1 "
                f"WHERE {where}",
                *args,
            )
            await notify(conn)
            return changed(status)

        return await self._db.tx(work)

    async def drop_policy(self, policy: str) -> None:
        async def work(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "DELETE FROM attempts WHERE task_id IN (SELECT id FROM tasks WHERE policy = $1)",
                policy,
            )
            await conn.execute(
                "DELETE FROM stats WHERE scope = $1 OR scope LIKE $2",
                f"policy:{policy}",
                f"latency:{policy}:%",
            )
            for table in ("history", "error_totals", "tasks", "counters", "totals", "replicas"):
                await conn.execute(f"DELETE FROM {table} WHERE policy = $1", policy)

        await self._db.tx(work)

    async def close(self) -> None:
        await self.closer()
