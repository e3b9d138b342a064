"""SQLite backend of the queue, for one engine per state dir.

Claims are one `UPDATE ... RETURNING` over a partial index of ready rows, so
claiming costs the same with ten tasks or ten million. Every write is one
short transaction. Counters move per batch where rows are queued (count_new) or
completed (complete), and through a trigger where a task is parked or retried
(migrations.py, version 5).
"""

from __future__ import annotations

import operator
import time
from collections.abc import Sequence

import aiosqlite

from engine.model import Completion, NewTask, Op, Outcome, Task, TaskState
from engine.state.queue import TaskQueue
from engine.state.sqlite.database import Database
from engine.state.sqlite.reads import COLUMNS, QueueReads, task_of

_CLAIM_ORDER = operator.attrgetter("next_at", "id")


def _row(t: NewTask, now: float) -> tuple[object, ...]:
    """A new task as the INSERT binds it: ?1 policy ... ?10 target_has_key, ?11 now."""
    return (
        t.policy,
        t.key,
        t.version_id,
        str(t.op),  # a StrEnum's str is its value, without enum.property's cost per row
        t.size,
        t.etag,
        t.src_mtime,
        t.seq,
        t.target_version,
        int(t.target_has_key),
        now,
    )


def _counted(
    done: Sequence[Completion], gone: Sequence[tuple[int, int, str, int]]
) -> list[tuple[tuple[str, str], tuple[int, int]]]:
    """What deleting `gone` (id, resync, state, size) takes from each counter, per batch."""
    policy_of = {c.task.id: c.task.policy for c in done}
    taken: dict[tuple[str, str], list[int]] = {}
    for task_id, _, state, size in gone:
        bucket = "queued" if state in ("pending", "in-flight") else state
        agg = taken.setdefault((policy_of[task_id], bucket), [0, 0])
        agg[0] += 1
        agg[1] += size
    return [(k, (n, b)) for k, (n, b) in taken.items()]


class SQLiteQueue(QueueReads, TaskQueue):
    """The queue in the state database (see engine/db.py for the schema)."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self._tx = db.tx

    async def enqueue(self, tasks: Sequence[NewTask]) -> int:
        """Insert new tasks; the replica map is re-checked inside the transaction.

        A scan reads the map, then enqueues; a copy may complete in between. So a
        copy task goes in only while the map still says what the scan saw (no
        replica, or the stale one in `target_version`), and a version delete only
        while its replica is still recorded: no duplicate copy, no double delete.
        """
        if not tasks:
            return 0
        now = time.time()
        kinds = {Op.PUT: "copy", Op.DELETE_MARKER: "copy", Op.DELETE_VERSION: "delete"}
        rows: dict[str, list[tuple[object, ...]]] = {"copy": [], "delete": [], "plain": []}
        for t in tasks:
            rows[kinds.get(t.op, "plain")].append(_row(t, now))
        # Numbered placeholders, bound from plain tuples: ?1 policy, ?2 key, ?3 version_id,
        # ?9 target_version, ?11 now (dict binding cost a third of the enqueue rate).
        insert = (
            "INSERT OR IGNORE INTO tasks (policy, key, version_id, op, size, etag, src_mtime, "
            "seq, target_version, target_has_key, next_at, created_at, updated_at) "
            "SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?11"
        )
        mapped = "SELECT 1 FROM replicas WHERE policy = ?1 AND key = ?2 AND source_version = ?3"
        conditions = {
            "copy": f" WHERE NOT EXISTS ({mapped} AND (?9 = '' OR target_version IS NOT ?9))",
            "delete": f" WHERE EXISTS ({mapped} AND target_version = ?9)",
            "plain": "",
        }
        added = 0
        async with self._tx() as conn:
            since = await newest_id(conn)
            for kind, batch in rows.items():
                if batch:
                    cur = await conn.executemany(insert + conditions[kind], batch)
                    added += cur.rowcount
            if added:
                await count_new(conn, since)
        return added

    async def claim(self, policies: Sequence[str], limit: int, lease_seconds: float) -> list[Task]:
        now = time.time()
        tasks: list[Task] = []
        async with self._tx() as conn:
            for policy in policies:
                if len(tasks) >= limit:
                    break
                # One policy at a time so the partial index tasks_ready serves both the
                # filter and the order: the cost does not grow with the backlog.
                async with conn.execute(
                    CLAIM,
                    (now + lease_seconds, now, policy, now, limit - len(tasks)),
                ) as cur:
                    cur.row_factory = None  # plain tuples: a Row costs a copy more
                    tasks.extend(map(task_of, await cur.fetchall()))
        tasks.sort(key=_CLAIM_ORDER)  # RETURNING promises no order
        return tasks

    async def complete(self, done: Sequence[Completion]) -> None:
        if not done:
            return
        async with self._tx() as conn:
            ids = [c.task.id for c in done]
            marks = ",".join("?" * len(ids))
            async with conn.execute(
                f"DELETE FROM tasks WHERE id IN ({marks}) RETURNING id, resync, state, size", ids
            ) as cur:
                gone = await cur.fetchall()
            existed = {row[0]: row[1] for row in gone}
            await conn.executemany(
                "UPDATE counters SET count = count - ?, bytes = bytes - ? "
                "WHERE policy = ? AND state = ?",
                [(n, size, policy, state) for (policy, state), (n, size) in _counted(done, gone)],
            )
            # A task whose row is gone belonged to a policy removed meanwhile: recording
            # it would resurrect that policy's totals and replica map.
            done = [c for c in done if c.task.id in existed]
            # Only a task that failed before has attempts recorded (and an error class,
            # which a retry does not clear): the usual batch skips this.
            retried = [(c.task.id,) for c in done if c.task.error_class]
            if retried:
                await conn.executemany("DELETE FROM attempts WHERE task_id = ?", retried)
            totals: dict[str, list[int]] = {}
            resyncs: dict[int, list[int]] = {}  # tasks a resync queued: its own counters
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
            if resyncs:
                await conn.executemany(
                    "UPDATE resyncs SET replicated = replicated + ?, skipped = skipped + ? "
                    "WHERE id = ?",
                    [(n[0], n[1], rid) for rid, n in resyncs.items()],
                )
            await conn.executemany(
                "INSERT INTO totals (policy, replicated, replicated_bytes, skipped) "
                "VALUES (?, ?, ?, ?) ON CONFLICT(policy) DO UPDATE SET "
                "replicated = replicated + excluded.replicated, "
                "replicated_bytes = replicated_bytes + excluded.replicated_bytes, "
                "skipped = skipped + excluded.skipped",
                [(p, *agg) for p, agg in totals.items()],
            )
            keep = [c for c in done if c.target_version is not None]
            await conn.executemany(
                "DELETE FROM replicas WHERE policy = ? AND key = ? AND source_version = ?",
                [
                    (c.task.policy, c.task.key, c.task.version_id)
                    for c in keep
                    if c.task.op is Op.DELETE_VERSION
                ],
            )
            await conn.executemany(
                "INSERT OR REPLACE INTO replicas "
                "(policy, key, source_version, target_version, src_mtime, seq) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (
                        c.task.policy,
                        c.task.key,
                        c.task.version_id,
                        c.target_version or None,
                        c.task.src_mtime,
                        c.task.seq,
                    )
                    for c in keep
                    if c.task.op not in (Op.DELETE_VERSION, Op.METADATA)
                ],
            )

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
        async with self._tx() as conn:
            await conn.execute(
                # target_has_key: the failed try may have landed (a reply lost on the
                # way back): the next one looks at the target before copying again.
                "UPDATE tasks SET state = ?, next_at = ?, lease_until = 0, last_error = ?, "
                "error_class = ?, error_code = ?, updated_at = ?, target_has_key = 1 WHERE id = ?",
                (state.value, at, error, error_class, code, now, task.id),
            )
            # Numbered in sequence, not by the task's attempt count: a retry by an
            # operator resets that count, the history goes on.
            await conn.execute(
                "INSERT INTO attempts (task_id, n, at, kind, error) SELECT ?1, "
                "COALESCE(MAX(n), 0) + 1, ?2, ?3, ?4 FROM attempts WHERE task_id = ?1",
                (task.id, now, error_class, error),
            )

    async def release(self, tasks: Sequence[Task]) -> None:
        if not tasks:
            return
        async with self._tx() as conn:
            await conn.executemany(
                "UPDATE tasks SET state = 'pending', lease_until = 0, target_has_key = 1, "
                "attempts = MAX(attempts - 1, 0), updated_at = ? WHERE id = ? AND state = 'in-flight'",
                [(time.time(), t.id) for t in tasks],
            )

    async def recover(self) -> int:
        async with self._tx() as conn:
            cur = await conn.execute(
                "UPDATE tasks SET state = 'pending', lease_until = 0, target_has_key = 1, "
                "updated_at = ? WHERE state = 'in-flight'",
                (time.time(),),
            )
            return cur.rowcount

    async def requeue(self, policy: str | None = None, ids: Sequence[int] = ()) -> int:
        where = "state IN ('failed', 'retrying')"
        args: list[object] = [time.time(), time.time()]
        if policy:
            where += " AND policy = ?"
            args.append(policy)
        if ids:
            where += f" AND id IN ({','.join('?' * len(ids))})"
            args.extend(ids)
        async with self._tx() as conn:
            cur = await conn.execute(
                "UPDATE tasks SET state = 'pending', attempts = 0, next_at = ?, updated_at = ? "
                f"WHERE {where}",
                args,
            )
            return cur.rowcount

    async def drop_policy(self, policy: str) -> None:
        async with self._tx() as conn:
            await conn.execute(
                "DELETE FROM attempts WHERE task_id IN (SELECT id FROM tasks WHERE policy = ?)",
                (policy,),
            )
            # Its telemetry too: a policy re-added under the same id starts from zero. A
            # prefix compared as text, not LIKE: `_` and `%` are wildcards there, and LIKE
            # ignores case, so dropping `p_` (or `MAIN`) took `p1`'s (or `main`'s) rows.
            prefix = f"latency:{policy}:"
            await conn.execute(
                "DELETE FROM stats WHERE scope = ? OR substr(scope, 1, length(?2)) = ?2",
                (f"policy:{policy}", prefix),
            )
            for table in ("history", "error_totals"):
                await conn.execute(f"DELETE FROM {table} WHERE policy = ?", (policy,))
            for table in ("tasks", "counters", "totals", "replicas"):
                await conn.execute(f"DELETE FROM {table} WHERE policy = ?", (policy,))

    async def close(self) -> None:
        await self._db.close()


async def enqueue_resync(conn: aiosqlite.Connection, resync: int, tasks: Sequence[NewTask]) -> int:
    """Queue a resync's copies inside the caller's transaction (its checkpoint's).

    The resync compared the source with what the target really holds and found
    these versions missing from it, whatever the replica map says: their map rows
    are stale, and `enqueue`'s re-check would refuse them (a NULL row, "nothing
    to copy", has no stale replica to name). So each row is dropped first, but only
    while it still says what the resync read before it listed the target: the
    replica it saw in `target_version` ('' for none), or NULL (the transfer decides
    that one again). A copy that completed meanwhile wrote a row the resync never
    saw: it stays and blocks the insert, as in `enqueue`, so no version is copied
    twice. With the stale rows gone, the transfer's "never overwrite a newer
    version" check stops trusting them too. Rows carry `resync` for its counters.
    """
    if not tasks:
        return 0
    now = time.time()
    since = await newest_id(conn)
    await conn.executemany(
        "DELETE FROM replicas WHERE policy = ? AND key = ? AND source_version = ? "
        "AND (target_version IS NULL OR target_version = ?)",
        [(t.policy, t.key, t.version_id, t.target_version) for t in tasks],
    )
    cur = await conn.executemany(
        "INSERT OR IGNORE INTO tasks (policy, key, version_id, op, size, etag, src_mtime, "
        "seq, target_version, target_has_key, next_at, created_at, updated_at, resync) "
        "SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?11, ?12 WHERE NOT EXISTS "
        "(SELECT 1 FROM replicas WHERE policy = ?1 AND key = ?2 AND source_version = ?3)",
        [(*_row(t, now), resync) for t in tasks],
    )
    if cur.rowcount:
        await count_new(conn, since)
    return cur.rowcount


# The oldest ready tasks of one policy whose key has nothing in flight. The key check goes
# through tasks_identity (the key's few rows): through tasks_state it read every in-flight
# row of the policy for each candidate, and a claim of 100 took 170 ms with 5,000 in flight.
CLAIM = (
    "UPDATE tasks SET state = 'in-flight', lease_until = ?, "
    "attempts = attempts + 1, updated_at = ? WHERE id IN (SELECT id FROM tasks "
    "INDEXED BY tasks_ready WHERE policy = ? AND state IN ('pending', 'retrying') "
    "AND next_at <= ? AND NOT EXISTS (SELECT 1 FROM tasks AS busy INDEXED BY tasks_identity "
    "WHERE busy.policy = tasks.policy AND busy.key = tasks.key AND busy.state = 'in-flight') "
    f"ORDER BY next_at, id LIMIT ?) RETURNING {COLUMNS}"
)


async def newest_id(conn: aiosqlite.Connection) -> int:
    """The highest task id now: rows inserted after this, in this transaction, are above it."""
    async with conn.execute("SELECT COALESCE(MAX(id), 0) FROM tasks") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def count_new(conn: aiosqlite.Connection, since: int) -> None:
    """Count the tasks queued above `since` in one statement, in the inserting transaction.

    A row trigger did this per task and was a third of a task's queue cost. Ids only grow
    within a write transaction (the rowid is max + 1), so the new rows are a range of
    the primary key, however many of the batch INSERT OR IGNORE let in."""
    await conn.execute(COUNT_NEW, (since,))


# NOT INDEXED: for GROUP BY policy the planner would rather walk all of tasks_state in
# policy order than sort the few new rows, which made each enqueue cost the backlog.
COUNT_NEW = (
    "INSERT INTO counters (policy, state, count, bytes) SELECT policy, 'queued', "
    "COUNT(*), SUM(size) FROM tasks NOT INDEXED WHERE id > ? GROUP BY policy "
    "ON CONFLICT DO UPDATE SET count = count + excluded.count, bytes = bytes + excluded.bytes"
)
