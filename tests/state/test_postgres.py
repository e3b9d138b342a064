"""What only the shared backend must get right: several processes on one queue at once.

Each "node" here is its own `open_state`: its own pool, node id and heartbeat,
as a separate engine process would have; they race on one database for real.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from engine.demo.postgres import PgCluster
from engine.model import Completion, NewTask, Op, Outcome, Task
from engine.state import State, open_state
from engine.state.postgres.queue import PostgresQueue
from tests.conftest import until


@pytest.fixture
async def nodes(pg: PgCluster) -> AsyncIterator[list[State]]:
    url = pg.fresh_url(lease=1.5)
    opened = [await open_state(url, engine=True) for _ in range(3)]
    yield opened
    for state in opened:
        await state.close()


def versions(keys: int, per_key: int) -> list[NewTask]:
    return [
        NewTask("p1", f"k{k:02}", f"v{v}", Op.PUT, size=v + 1, seq=v)
        for v in range(per_key)
        for k in range(keys)
    ]


async def test_racing_claimers_never_run_one_key_twice_and_keep_its_order(
    nodes: list[State],
) -> None:
    """Three nodes claim, hold a moment and complete, all at once: every task runs
    exactly once, no key is ever held by two claims, and each key's versions run
    in the order they were queued."""
    assert await nodes[0].queue.enqueue(versions(keys=12, per_key=6)) == 72
    holding: dict[str, int] = {}  # key -> the claim holding it
    ran: list[Task] = []
    overlaps: list[str] = []

    async def worker(queue: PostgresQueue, rng: random.Random) -> None:
        idle = 0
        while idle < 20:
            batch = await queue.claim(["p1"], rng.randint(1, 5), 60)
            if not batch:
                idle += 1
                await asyncio.sleep(0.01)
                continue
            idle, claim = 0, id(batch)
            for task in batch:  # one claim may hold a key's run of versions, no other claim
                if holding.setdefault(task.key, claim) != claim:
                    overlaps.append(task.key)
            await asyncio.sleep(rng.random() / 100)
            for task in batch:  # run in the order given, as the dispatcher does
                holding.pop(task.key, None)
                ran.append(task)
            await queue.complete([Completion(t, Outcome.REPLICATED, t.size, "x") for t in batch])

    await asyncio.gather(
        *(worker(n.queue, random.Random(i)) for i, n in enumerate(nodes) for _ in range(2))  # type: ignore[arg-type]
    )
    assert overlaps == []
    assert sorted(Counter(t.identity for t in ran).values()) == [1] * 72, "each task once"
    for key in {t.key for t in ran}:
        assert [t.seq for t in ran if t.key == key] == list(range(6)), f"{key} out of order"
    counts = (await nodes[1].queue.counts())["p1"]
    assert (counts.pending, counts.in_flight, counts.replicated) == (0, 0, 72)
    assert counts.replicated_bytes == sum(t.size for t in ran)


async def test_a_silent_node_is_gone_within_its_lease_and_its_tasks_are_taken_over(
    nodes: list[State],
) -> None:
    dead, alive, _ = nodes
    await dead.queue.enqueue(versions(keys=4, per_key=1))
    held = await dead.queue.claim(["p1"], 10, 600)  # a long lease: the heartbeat decides
    assert len(held) == 4
    dead.nodes._task.cancel()  # type: ignore[attr-defined]  # as SIGKILL: no goodbye
    dead_id = dead.queue.node  # type: ignore[attr-defined]

    async def states() -> dict[str, str]:
        return {n.id: n.state for n in await alive.nodes.all()}

    await until(lambda: _is(states(), dead_id, "gone"), 10)
    taken = await until(lambda: alive.queue.claim(["p1"], 10, 60), 10)
    assert sorted(t.key for t in taken) == sorted(t.key for t in held)
    assert all(t.attempts == 2 for t in taken), "the lost try counts as an attempt"


async def _is(states: object, node: str, state: str) -> bool:
    return (await states).get(node) == state  # type: ignore[misc]


async def test_a_clean_stop_hands_over_at_once(nodes: list[State]) -> None:
    leaving, staying, _ = nodes
    await leaving.queue.enqueue(versions(keys=2, per_key=1))
    await leaving.queue.claim(["p1"], 10, 600)
    await leaving.nodes.stop()  # type: ignore[attr-defined]
    assert await staying.queue.recover() == 2
    assert {n.state for n in await staying.nodes.all()} >= {"stopped", "up"}


async def test_an_enqueue_on_one_node_wakes_the_others(nodes: list[State]) -> None:
    woken = asyncio.Event()
    nodes[1].queue.subscribe(woken.set)
    await until(lambda: _listening(nodes[1]), 10)
    await nodes[0].queue.enqueue(versions(keys=1, per_key=1))
    await asyncio.wait_for(woken.wait(), 10)


async def _listening(state: State) -> bool:
    """The listener is connected once the database lists it as listening."""
    queue: PostgresQueue = state.queue  # type: ignore[assignment]
    return bool(
        await queue._db.value("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'")
    )


async def test_counters_stay_exact_under_concurrent_writers(nodes: list[State]) -> None:
    """Enqueue, claim, park and complete from three nodes at once; the O(1) counters
    then agree with a count of the rows themselves."""

    async def traffic(state: State, n: int) -> None:
        q = state.queue
        await q.enqueue([NewTask("p1", f"n{n}-{i}", "v", Op.PUT, size=i) for i in range(60)])
        for _ in range(6):
            batch = await q.claim(["p1"], 8, 60)
            await q.complete([Completion(t, Outcome.REPLICATED, t.size, "x") for t in batch[:4]])
            for t in batch[4:6]:
                await q.fail(t, "boom", "permanent")
            await q.release(batch[6:])

    await asyncio.gather(*(traffic(s, n) for n, s in enumerate(nodes)))
    queue: PostgresQueue = nodes[0].queue  # type: ignore[assignment]
    truth = {
        r["state"]: (r["n"], r["b"])
        for r in await queue._db.rows(
            "SELECT state, count(*) AS n, sum(size) AS b FROM tasks GROUP BY state"
        )
    }
    counts = (await queue.counts())["p1"]
    for state, (n, size) in truth.items():
        field = state.replace("-", "_")
        assert (getattr(counts, field), getattr(counts, field + "_bytes")) == (n, size)
    assert counts.replicated == 3 * 6 * 4
