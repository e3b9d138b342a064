"""PostgreSQL backend of the queue, for several engine processes on several machines.

A claim is one statement: the oldest ready task of each key not in flight,
`FOR UPDATE SKIP LOCKED` (claimers never wait on each other's rows), then a
`busy` row per key with ON CONFLICT DO NOTHING (the primary key settles two
nodes racing for one key), then the lease. Leases belong to a node: its
heartbeat (engine/state/postgres/nodes.py) renews them, and `recover` hands
back those of nodes no longer heard from. Counters follow by trigger
(engine/state/postgres/schema.py).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

import asyncpg

from engine.model import Attempt, Completion, Counts, NewTask, Op, Outcome, Task, TaskState
from engine.state.postgres.database import Database, changed
from engine.state.postgres.schema import CHANNEL, NOW, SHARDS
from engine.state.postgres.wakeups import Wakeups
from engine.state.queue import Replica, TaskQueue

# In the field order of engine.model.Task, so a row maps to a Task positionally.
_FIELDS = (
    "policy, key, version_id, op, size, etag, src_mtime, seq, target_version, target_has_key, "
    "id, state, attempts, next_at, last_error, error_class, created_at, updated_at, error_code"
)
_COLUMNS = ", ".join(f"t.{name.strip()}" for name in _FIELDS.split(","))
_OPS = {op.value: op for op in Op}
_STATES = {state.value: state for state in TaskState}

# A node is live while it heartbeats; an in-flight task is held while its lease runs
# and its node is live. Anything else is handed back by `recover`.
_LIVE = f"SELECT id FROM nodes WHERE stopped_at IS NULL AND heartbeat_at + lease >= {NOW}"


async def _nothing() -> None:
    return None


def _task(row: asyncpg.Record) -> Task:
    values = list(row.values())
    values[3] = _OPS[values[3]]
    values[11] = _STATES[values[11]]
    return Task(*values)


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


async def notify(conn: asyncpg.Connection) -> None:
    """Tell idle nodes there is work (delivered at commit, once per transaction)."""
    await conn.execute("SELECT pg_notify($1, '')", CHANNEL)


class PostgresQueue(TaskQueue):
    """The queue in the shared database; `node` names this process's leases."""

    def __init__(self, db: Database, node: str, wakeups: Wakeups) -> None:
        self._db = db
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
                    "WITH ready AS (SELECT t.id, t.policy, t.key FROM tasks t "
                    "WHERE t.policy = $1 AND t.state IN ('pending', 'retrying') AND t.next_at <= $2 "
                    "AND NOT EXISTS (SELECT 1 FROM busy b WHERE b.policy = t.policy AND b.key = t.key) "
                    "AND NOT EXISTS (SELECT 1 FROM tasks o WHERE o.policy = t.policy "
                    "AND o.key = t.key AND o.id < t.id AND o.state IN ('pending', 'retrying') "
                    "AND o.next_at <= $2) "
                    "ORDER BY t.next_at, t.id LIMIT $3 FOR UPDATE OF t SKIP LOCKED), "
                    "held AS (INSERT INTO busy (policy, key, task_id) "
                    "SELECT policy, key, id FROM ready ORDER BY key ON CONFLICT DO NOTHING "
                    "RETURNING task_id) "
                    "UPDATE tasks t SET state = 'in-flight', attempts = t.attempts + 1, "
                    f"updated_at = $2, lease_until = {NOW} + $4, claimed_by = $5 "
                    f"FROM held WHERE t.id = held.task_id RETURNING {_COLUMNS}",
                    policy,
                    now,
                    limit - len(tasks),
                    lease_seconds,
                    self.node,
                )
                tasks.extend(_task(r) for r in rows)
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
        if mapped:
            await conn.executemany(
                "INSERT INTO replicas (policy, key, source_version, target_version, src_mtime, "
                "seq) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (policy, key, source_version) "
                "DO UPDATE SET target_version = excluded.target_version, "
                "src_mtime = excluded.src_mtime, seq = excluded.seq",
                [(*k, *v) for k, v in sorted(mapped.items())],
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

    async def parked(self, ids: Sequence[int], policy: str | None = None) -> set[int]:
        rows = await self._db.rows(
            "SELECT id FROM tasks WHERE id = ANY($1::bigint[]) AND state IN ('failed', 'retrying') "
            "AND ($2::text IS NULL OR policy = $2)",
            list(set(ids)),
            policy,
        )
        return {r["id"] for r in rows}

    async def counts(self) -> dict[str, Counts]:
        fields: dict[str, dict[str, float | int | None]] = {}
        async with self._db.pool.acquire() as conn:
            for row in await conn.fetch(
                "SELECT policy, state, sum(count) AS n, sum(bytes) AS b FROM counters "
                "GROUP BY policy, state"
            ):
                name = row["state"].replace("-", "_")
                fields.setdefault(row["policy"], {})[name] = int(row["n"])
                fields[row["policy"]][name + "_bytes"] = int(row["b"])
            for row in await conn.fetch(
                "SELECT policy, sum(replicated) AS r, sum(replicated_bytes) AS rb, "
                "sum(skipped) AS s FROM totals GROUP BY policy"
            ):
                fields.setdefault(row["policy"], {}).update(
                    replicated=int(row["r"]), replicated_bytes=int(row["rb"]), skipped=int(row["s"])
                )
            for policy, entry in fields.items():
                entry["oldest_pending_at"] = await conn.fetchval(
                    "SELECT min(created_at) FROM tasks WHERE policy = $1 AND state = 'pending'",
                    policy,
                )
        return {p: Counts(**entry) for p, entry in fields.items()}  # type: ignore[arg-type]

    async def tasks(
        self,
        policy: str | None = None,
        states: Sequence[TaskState] = (),
        limit: int = 100,
        after: int = 0,
        query: str = "",
        descending: bool = False,
    ) -> list[Task]:
        where: list[str] = []
        args: list[object] = []

        def arg(value: object) -> str:
            args.append(value)
            return f"${len(args)}"

        if after:
            where.append(f"t.id {'<' if descending else '>'} {arg(after)}")
        if query:
            needle = arg(query.lower())
            where.append(
                f"(strpos(lower(t.key), {needle}) > 0 OR strpos(lower(t.last_error), {needle}) > 0)"
            )
        if policy:
            where.append(f"t.policy = {arg(policy)}")
        if states:
            where.append(f"t.state = ANY({arg([s.value for s in states])}::text[])")
        sql = (
            f"SELECT {_COLUMNS} FROM tasks t WHERE {' AND '.join(where) or 'TRUE'} "
            f"ORDER BY t.id {'DESC' if descending else ''} LIMIT {arg(limit)}"
        )
        return [_task(r) for r in await self._db.rows(sql, *args)]

    async def replicas(
        self, policies: Sequence[str], low: str, high: str | None, limit: int = -1
    ) -> list[Replica]:
        if not policies:
            return []
        rows = await self._db.rows(
            "SELECT key, source_version, target_version, src_mtime, seq FROM replicas "
            "WHERE policy = ANY($1::text[]) AND key > $2 AND ($3::text IS NULL OR key <= $3) "
            "ORDER BY key LIMIT $4",
            list(policies),
            low,
            high,
            None if limit < 0 else limit,
        )
        return [Replica(*r.values()) for r in rows]

    async def attempts(self, task_id: int) -> list[Attempt]:
        rows = await self._db.rows(
            "SELECT n, at, kind, error FROM attempts WHERE task_id = $1 ORDER BY n", task_id
        )
        return [Attempt(*r.values()) for r in rows]

    async def replica_of(self, policy: str, key: str, source_version: str) -> str | None:
        return await self._db.value(
            "SELECT target_version FROM replicas WHERE policy = $1 AND key = $2 "
            "AND source_version = $3",
            policy,
            key,
            source_version,
        )

    async def newest_replicas(
        self, policy: str, keys: Sequence[str]
    ) -> dict[str, tuple[float, int]]:
        rows = await self._db.rows(
            "SELECT DISTINCT ON (key) key, src_mtime, seq FROM replicas WHERE policy = $1 "
            "AND key = ANY($2::text[]) AND target_version IS NOT NULL "
            "ORDER BY key, src_mtime DESC, seq DESC",
            policy,
            sorted(set(keys)),
        )
        return {r["key"]: (r["src_mtime"], r["seq"]) for r in rows}

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
