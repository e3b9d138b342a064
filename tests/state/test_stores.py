"""The small stores' contract (policies, resyncs, telemetry, audit, leases) on both backends."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.demo.postgres import PgCluster
from engine.errors import MissingError, UserError
from engine.model import Completion, NewTask, Op, Outcome
from engine.policy import Policy
from engine.state import State, open_state
from engine.state.stores import ResyncStopped


def policy(pid: str = "p1", priority: int = 1, bucket: str = "src") -> Policy:
    return Policy(pid, priority, "a", bucket, "b", "dst")


class StoresContract:
    async def open(self, where: Path) -> State:
        raise NotImplementedError

    @pytest.fixture
    async def state(self, tmp_path: Path) -> AsyncIterator[State]:
        opened = await self.open(tmp_path / "state")
        yield opened
        await opened.close()

    async def test_policies_add_update_pause_remove(self, state: State) -> None:
        store = state.policies
        added = await store.add(policy())
        assert added.created_at > 0 and await store.next_priority() == 2
        with pytest.raises(UserError, match="priority 1"):
            await store.add(policy("p2", 1, "other"))
        await store.add(policy("p2", 5, "other"))
        assert [p.id for p in await store.all()] == ["p2", "p1"]
        await store.update(Policy("p1", 3, "a", "src", "b", "dst", prefix="x/", bandwidth=9))
        got = await store.get("p1")
        assert (got.prefix, got.bandwidth, got.priority) == ("x/", 9, 3)
        assert await store.set_paused(True, "p1") == 1 and (await store.get("p1")).paused
        assert not await store.engine_paused()
        await store.set_paused(True)
        assert await store.engine_paused()
        await store.remove("p1")
        with pytest.raises(MissingError):
            await store.get("p1")

    async def test_resync_start_checkpoint_cancel(self, state: State) -> None:
        await state.policies.add(policy())
        (r,) = await state.resyncs.start(["p1"], 100)
        with pytest.raises(UserError, match="already running"):
            await state.resyncs.start(["p1"], 100)
        page = [NewTask("p1", f"k{i}", "v1", Op.PUT, size=1) for i in range(3)]
        r = await state.resyncs.checkpoint(r, page, "k2", versions=3, rate=1.5)
        stored = await state.resyncs.get(r.id)
        assert (stored.cursor, stored.scanned, stored.enqueued, stored.pending) == ("k2", 3, 3, 3)
        claimed = await state.queue.claim(["p1"], 10, 60)
        await state.queue.complete([Completion(t, Outcome.REPLICATED, 1, "t") for t in claimed])
        assert (await state.resyncs.get(r.id)).replicated == 3
        assert await state.resyncs.note(r.id, total=3)
        assert [x.id for x in await state.resyncs.running()] == [r.id]
        assert await state.resyncs.cancel(["p1"]) == [r.id]
        assert not await state.resyncs.note(r.id, total=4), "a cancelled resync stays cancelled"
        with pytest.raises(ResyncStopped):
            await state.resyncs.checkpoint(r, page, "k3", 1, 1.0)
        assert (await state.resyncs.latest("p1")).state == "cancelled"  # type: ignore[union-attr]

    async def test_telemetry_totals_errors_history_and_snapshot(self, state: State) -> None:
        now = time.time()
        t = state.telemetry
        await t.save([("p1", now - 5, "{}"), ("p1", now, '{"n":1}')], [("policy:p1", "x", 2.0)],
                     [("p1", "retryable", "SlowDown", 2, "slow", now)], now - 60)  # fmt: skip
        await t.save([], [], [("p1", "retryable", "SlowDown", 3, "slower", now)], now - 60)
        loaded = await t.load()
        assert loaded.stats == [("policy:p1", "x", 2.0)]
        assert loaded.errors == [("p1", "retryable", "SlowDown", 5, "slower", now)]
        assert [h[2] for h in await t.history(now - 10, "p1", 10)] == ['{"n":1}', "{}"]
        assert await t.published() is None
        await t.publish('{"a": 1}')
        assert await t.published() == '{"a": 1}'

    async def test_audit_lists_newest_first(self, state: State) -> None:
        for n in range(3):
            await state.audit.record("cli", "add", f"p{n}")
        assert [e.detail for e in await state.audit.recent(2)] == ["p2", "p1"]

    async def test_a_lease_is_held_by_one_process_at_a_time(self, state: State) -> None:
        assert await state.leases.hold("scan:p1")
        assert await state.leases.hold("scan:p1"), "the holder renews it"


class TestSQLiteStores(StoresContract):
    async def open(self, where: Path) -> State:
        return await open_state(where.with_suffix(".db"))


class TestPostgresStores(StoresContract):
    @pytest.fixture(autouse=True)
    def _cluster(self, pg: PgCluster) -> None:
        self.pg = pg

    async def open(self, where: Path) -> State:
        self.url = self.pg.fresh_url()
        return await open_state(self.url)

    async def test_a_lease_is_held_by_one_process_at_a_time(self, state: State) -> None:
        other = await open_state(self.url)  # another node on the same database
        try:
            assert await state.leases.hold("scan:p1")
            assert not await other.leases.hold("scan:p1"), "another node must wait"
            await state.leases.drop("scan:p1")
            assert await other.leases.hold("scan:p1")
            assert not await state.leases.hold("scan:p1")
        finally:
            await other.close()
