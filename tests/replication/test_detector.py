"""The detector's scheduling over MemoryStores: when full scans and tag sweeps run."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from engine.config import EngineConfig
from engine.replication.detector import Detector
from engine.s3.memory import pause
from engine.state.sqlite.policies import SQLitePolicyStore
from tests.replication.conftest import POLICY, SRC, Rig, until


def detector_on(rig: Rig, tmp_path: Path) -> Detector:
    """A detector whose full scans are due at once after each other (a tiny interval)."""
    engine: Any = SimpleNamespace(
        config=EngineConfig(state_dir=tmp_path, scan_interval=0.001, events=False),
        policies=rig.policies,
        links=rig.links,
        aliases={},
        dispatchers={"dst": rig.dispatcher},
        queue=rig.queue,
        store=SQLitePolicyStore(rig.db),
        clients={"src": rig.source, "dst": rig.target},
    )
    return Detector(engine, defer_limit=1_000_000)  # the limit itself is not under test


async def test_a_due_full_scan_waits_while_the_last_backlog_copies(
    rig: Rig, tmp_path: Path
) -> None:
    p = await rig.add(POLICY)
    for i in range(3):
        await rig.source.put(SRC, f"k{i}", b"x", {})
    gate = asyncio.Event()
    rig.source.hook = pause(gate, "get")  # copies start and hold there
    detector = detector_on(rig, tmp_path)

    first = await detector.sync_once(p)
    assert first.full and first.enqueued == 3
    await until(lambda: rig.dispatcher.working_on(p.id))
    await rig.source.put(SRC, "later", b"y", {})
    deferred = await detector.sync_once(p)
    assert not deferred.full, "no rescan of both buckets while the first scan's copies run"
    assert detector.scan_count[p.id] == 1

    gate.set()
    await rig.settle()
    assert not rig.dispatcher.working_on(p.id)
    second = await detector.sync_once(p)
    assert second.full and second.enqueued == 1, "once drained, the due scan runs and finds it"
    await rig.settle()
    assert sorted(rig.target.live("dst-bucket")) == ["k0", "k1", "k2", "later"]


async def test_hinted_keys_are_scanned_while_a_full_scan_is_deferred(
    rig: Rig, tmp_path: Path
) -> None:
    p = await rig.add(POLICY)
    await rig.source.put(SRC, "slow", b"x", {})
    gate = asyncio.Event()
    rig.source.hook = pause(gate, "get")
    detector = detector_on(rig, tmp_path)
    await detector.sync_once(p)
    await until(lambda: rig.dispatcher.working_on(p.id))

    await rig.source.put(SRC, "event", b"e", {})
    hinted = await detector.sync_once(p, {"event"})
    assert (hinted.full, hinted.enqueued) == (False, 1), "an event's key still goes in at once"
    gate.set()
    await rig.settle()
    assert sorted(rig.target.live("dst-bucket")) == ["event", "slow"]
