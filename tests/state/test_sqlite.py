"""What only the SQLite backend has to get right: its transactions under cancellation."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from engine.state import open_state
from engine.state.sqlite.database import open_db


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
