"""The queue's read side in PostgreSQL: pages of tasks, counters, failure groups, the map.

Kept apart from the write path (queue.py), as in SQLite. Each query names the
index that serves it (engine/state/postgres/schema.py): they run beside the
copy path of several nodes and under backlogs of millions.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from engine.model import Attempt, Cause, Counts, FailureGroup, Newest, Op, Task, TaskState
from engine.state.postgres.database import Database
from engine.state.queue import Replica

# In the field order of engine.model.Task, so a row maps to a Task positionally.
_FIELDS = (
    "policy, key, version_id, op, size, etag, src_mtime, seq, target_version, target_has_key, "
    "id, state, attempts, next_at, last_error, error_class, created_at, updated_at, error_code"
)
COLUMNS = ", ".join(f"t.{name.strip()}" for name in _FIELDS.split(","))
PARKED = "t.state IN ('failed', 'retrying')"  # as in the partial indexes tasks_parked/_causes
_OPS = {op.value: op for op in Op}
_STATES = {state.value: state for state in TaskState}


def task_of(row: asyncpg.Record) -> Task:
    values = list(row.values())
    values[3] = _OPS[values[3]]
    values[11] = _STATES[values[11]]
    return Task(*values)


class QueueReads:
    """What the queue answers without writing; PostgresQueue adds the write path."""

    def __init__(self, db: Database) -> None:
        self._db = db

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
        cause: Cause | None = None,
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
            if set(states) <= {TaskState.FAILED, TaskState.RETRYING}:
                where.append(PARKED)  # the partial index tasks_parked
        if cause is not None:
            if policy and policy != cause.policy:
                return []
            # tasks_causes (policy, op, error_class, error_code, id) of parked rows only.
            where += [
                f"t.policy = {arg(cause.policy)}",
                f"t.op = {arg(cause.op.value)}",
                f"t.error_class = {arg(cause.error_class)}",
                f"t.error_code = {arg(cause.code)}",
                PARKED,
            ]
        sql = (
            f"SELECT {COLUMNS} FROM tasks t WHERE {' AND '.join(where) or 'TRUE'} "
            f"ORDER BY t.id {'DESC' if descending else ''} LIMIT {arg(limit)}"
        )
        return [task_of(r) for r in await self._db.rows(sql, *args)]

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

    async def replicas_of_key(self, policy: str, key: str) -> list[Replica]:
        rows = await self._db.rows(  # the primary key (policy, key, source_version)
            "SELECT key, source_version, target_version, src_mtime, seq FROM replicas "
            'WHERE policy = $1 AND key = $2 ORDER BY source_version COLLATE "C"',
            policy,
            key,
        )
        return [Replica(*r.values()) for r in rows]

    async def tasks_of_key(self, policies: Sequence[str], key: str) -> list[Task]:
        rows = await self._db.rows(  # tasks_key (policy, key, id)
            f"SELECT {COLUMNS} FROM tasks t WHERE t.policy = ANY($1::text[]) AND t.key = $2 "
            "ORDER BY t.id",
            list(policies),
            key,
        )
        return [task_of(r) for r in rows]

    async def ahead(self, task: Task) -> int:
        """Two ranges of the partial index tasks_ready (policy, next_at, id): tasks due
        before this one, and those due with it but older. The cost is the number
        ahead, never the tasks behind it; retrying rows due earlier count too."""
        ready = "FROM tasks WHERE policy = $1 AND state IN ('pending', 'retrying')"
        return int(
            await self._db.value(
                f"SELECT (SELECT count(*) {ready} AND next_at < $2) "
                f"+ (SELECT count(*) {ready} AND next_at = $2 AND id < $3)",
                task.policy,
                task.next_at,
                task.id,
            )
        )

    async def failure_groups(self, policy: str | None = None) -> list[FailureGroup]:
        """One pass over tasks_causes (parked rows only): the cost is the number of
        parked tasks, whatever the pending backlog. The example is the group's most
        recently parked task; first seen is its earliest attempt."""
        rows = await self._db.rows(
            "SELECT t.policy, t.op, t.error_class, t.error_code, count(*) AS n, sum(t.size) AS b, "
            "min(COALESCE((SELECT min(a.at) FROM attempts a WHERE a.task_id = t.id), "
            "t.updated_at)) AS first, max(t.updated_at) AS last, "
            "(array_agg(t.key ORDER BY t.updated_at DESC, t.id DESC))[1] AS key, "
            "(array_agg(t.last_error ORDER BY t.updated_at DESC, t.id DESC))[1] AS error, "
            "count(*) FILTER (WHERE t.state = 'failed') AS failed "
            f"FROM tasks t WHERE {PARKED} AND ($1::text IS NULL OR t.policy = $1) "
            "GROUP BY t.policy, t.op, t.error_class, t.error_code",
            policy,
        )
        groups = [
            FailureGroup(
                cause=Cause(r["policy"], _OPS[r["op"]], r["error_class"], r["error_code"]),
                count=r["n"],
                bytes=int(r["b"] or 0),
                first_seen=r["first"],
                last_seen=r["last"],
                example_key=r["key"],
                example_error=r["error"],
                failed=r["failed"],
            )
            for r in rows
        ]
        groups.sort(key=lambda g: (-g.count, -g.last_seen))
        return groups

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

    async def newest_replicas(self, policy: str, keys: Sequence[str]) -> dict[str, Newest]:
        rows = await self._db.rows(
            "SELECT DISTINCT ON (key) key, src_mtime, seq, source_version FROM replicas "
            "WHERE policy = $1 AND key = ANY($2::text[]) AND target_version IS NOT NULL "
            "ORDER BY key, src_mtime DESC, seq DESC, source_version DESC",
            policy,
            sorted(set(keys)),
        )
        return {r["key"]: (r["src_mtime"], r["seq"], r["source_version"]) for r in rows}
