"""What only the SQLite backend has to get right: transactions under cancellation, migrations."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

from engine.model import Completion, NewTask, Op, Outcome
from engine.state import open_state
from engine.state.sqlite.database import open_db
from engine.state.sqlite.migrations import APPLICATION_ID, MIGRATIONS
from engine.state.sqlite.queue import CLAIM, COUNT_NEW, SQLiteQueue


async def test_a_transaction_cancelled_while_starting_leaves_none_open(tmp_path: Path) -> None:
    """The console cancels polls and shutdown cancels loops at any await, BEGIN included."""
    db = await open_db(tmp_path / "cancel.db")
    await db.write("CREATE TABLE marks (n INTEGER)")

    async def write(n: int) -> None:
        async with db.tx() as conn:
            await conn.execute("INSERT INTO marks VALUES (?)", (n,))

    for n in range(60):
        task = asyncio.create_task(write(-1))
        for _ in range(n % 3):  # cancel at a different await each time
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await write(n)  # raised "cannot start a transaction within a transaction"
    rows = await db.rows("SELECT n FROM marks WHERE n >= 0 ORDER BY n")
    assert [r[0] for r in rows] == list(range(60))
    await db.close()


async def test_dropping_a_policy_keeps_every_other_policys_telemetry(tmp_path: Path) -> None:
    """`_` is a LIKE wildcard and LIKE ignores case: dropping `p_` took `p1`'s latency
    rows, and dropping `MAIN` took `main`'s."""
    state = await open_state(tmp_path / "state.db")
    ids = ["p_", "p1", "MAIN", "main", "p%"]
    try:
        await state.telemetry.save([], [(f"latency:{pid}:small", "0", 1.0) for pid in ids], [], 0.0)
        await state.queue.drop_policy("p_")
        await state.queue.drop_policy("MAIN")
        await state.queue.drop_policy("p%")
        left = {scope for scope, _, _ in (await state.telemetry.load()).stats}
    finally:
        await state.close()
    assert left == {"latency:p1:small", "latency:main:small"}


async def test_a_version_4_database_keeps_exact_counts_through_the_counter_migration(
    tmp_path: Path,
) -> None:
    """Migration 5 moves counting from row triggers to batches: a queue mid-run (tasks in
    every state, counted the old way) reads the same counts after it as before."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
    for number, statements in enumerate(MIGRATIONS[:4], 1):
        for sql in statements:
            conn.execute(sql)
        conn.execute(f"PRAGMA user_version={number}")
    states = ["pending"] * 5 + ["in-flight"] * 3 + ["retrying"] * 2 + ["failed"]
    conn.executemany(
        "INSERT INTO tasks (policy, key, version_id, op, size, state, next_at, created_at, "
        "updated_at) VALUES ('p1', ?, 'v', 'put', ?, ?, 0, ?, 0)",
        [(f"k{i}", 10 + i, state, 100.0 + i) for i, state in enumerate(states)],
    )
    old = dict(conn.execute("SELECT state, count FROM counters").fetchall())
    assert old == {"pending": 5, "in-flight": 3, "retrying": 2, "failed": 1}
    conn.close()

    db = await open_db(path)
    queue = SQLiteQueue(db)
    counts = (await queue.counts())["p1"]
    sizes = [10 + i for i in range(len(states))]
    assert (counts.pending, counts.pending_bytes) == (5, sum(sizes[:5]))
    assert (counts.in_flight, counts.in_flight_bytes) == (3, sum(sizes[5:8]))
    assert (counts.retrying, counts.failed, counts.oldest_pending_at) == (2, 1, 100.0)
    # ...and keeps counting the new way: a completion of an in-flight task, a new task.
    flying = [t for t in await queue.tasks("p1", limit=20) if t.state.value == "in-flight"]
    await queue.complete([Completion(flying[0], Outcome.REPLICATED, 12, "t1")])
    await queue.enqueue([NewTask(policy="p1", key="new", version_id="v", op=Op.PUT, size=7)])
    counts = (await queue.counts())["p1"]
    assert (counts.pending, counts.in_flight, counts.replicated) == (6, 2, 1)
    assert counts.pending_bytes == sum(sizes[:5]) + 7
    await db.close()


async def test_counting_new_tasks_reads_only_the_new_rows(tmp_path: Path) -> None:
    """Each enqueue counts its rows by a primary-key range; a plan that walks an index of
    the whole table instead makes every enqueue cost the backlog (it did: 5k/s at 500k)."""
    db = await open_db(tmp_path / "plan.db")
    async with db.conn.execute("EXPLAIN QUERY PLAN " + COUNT_NEW, (0,)) as cur:
        plan = " / ".join(row[3] for row in await cur.fetchall())
    assert "USING INTEGER PRIMARY KEY (rowid>?)" in plan and "SCAN tasks" not in plan, plan
    await db.close()


async def test_a_claim_costs_the_same_with_thousands_of_tasks_in_flight(tmp_path: Path) -> None:
    """The per-key order check reads the candidate key's own rows. Through tasks_state it
    read every in-flight row of the policy per candidate: counted here in SQLite VM steps
    (deterministic, no clock), a claim beside 2,000 in-flight tasks cost 20x one beside none."""
    path = tmp_path / "claims.db"
    queue = SQLiteQueue(await open_db(path))
    tasks = [NewTask("p", f"k/{i:06d}", "v", Op.PUT, 1) for i in range(3000)]
    await queue.enqueue(tasks)
    await queue.close()
    conn = sqlite3.connect(path, isolation_level=None)
    steps = [0]

    def step() -> int:
        steps[0] += 1
        return 0

    conn.set_progress_handler(step, 100)

    def claim_steps(limit: int) -> int:
        steps[0] = 0
        conn.execute("BEGIN")
        claimed = conn.execute(CLAIM, (1e12, 0, "p", 1e12, limit)).fetchall()
        conn.execute("COMMIT")
        assert len(claimed) == limit
        return steps[0]

    alone = claim_steps(50)
    claim_steps(2000)  # now 2,050 in flight
    beside_many = claim_steps(50)
    plan = " / ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + CLAIM, (0,) * 5))
    conn.close()
    assert beside_many < 2 * alone, (alone, beside_many)
    assert "SEARCH busy USING INDEX tasks_identity (policy=? AND key=?)" in plan, plan
