"""Resync end to end: the real engine and CLI against two real SeaweedFS servers.

What a resync queues and counts is tested on MemoryStore in tests/replication/test_resync.py;
here: the CLI, failed copies and their retry, kill-and-resume, cancel.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

from engine.model import Completion, NewTask, Op, Outcome
from engine.state.sqlite import stores
from engine.state.sqlite.database import open_db
from engine.state.sqlite.queue import enqueue_resync
from tests.conftest import Pair, eventually, make_bucket


def resyncs(pair: Pair, *options: str) -> list[dict[str, Any]]:
    path = f"src/{pair.src_bucket}"
    return json.loads(pair.ml("replicate", "resync", "status", path, "--json", *options).stdout)


def resync(pair: Pair, policy: str = "p1") -> dict[str, Any]:
    (found,) = [r for r in resyncs(pair) if r["policy"] == policy]
    return found


def finished(pair: Pair) -> dict[str, Any]:
    r = resync(pair)
    return r if r["state"] == "done" else {}


def start(pair: Pair, *options: str) -> str:
    return pair.ml("replicate", "resync", "start", f"src/{pair.src_bucket}", *options).stdout


def old_objects(pair: Pair, prefix: str, count: int, size: int) -> None:
    """Objects written before the policy: with existing-objects off, only a resync copies them."""
    pair.seed(prefix, count, size)
    last = pair.src.stat_object(pair.src_bucket, f"{prefix}{count - 1:04}")
    # Listings have one-second resolution and a write in the policy's own second counts
    # as new: add the policy once that second is over (as test_replication does).
    eventually(lambda: time.time() >= last.last_modified.timestamp() + 1.05, interval=0.05)


def test_resync_status_counts_failed_copies_and_their_retry(pair: Pair) -> None:
    old_objects(pair, "f/", 4, 100)
    pair.add_policy("--replicate", "delete,delete-marker")
    pair.ml("replicate", "pause")
    pair.start_engine()
    start(pair)
    queued = eventually(lambda: (r := resync(pair))["phase"] == "copying" and r)
    assert (queued["scanned"], queued["enqueued"], queued["pending"]) == (4, 4, 4)
    assert queued["replicated"] == 0 and queued["state"] == "running"

    pair.dst.remove_bucket(pair.dst_bucket)  # every copy now fails: NoSuchBucket
    pair.ml("replicate", "resume")
    failed = eventually(lambda: finished(pair))
    assert (failed["failed"], failed["replicated"], failed["pending"]) == (4, 0, 0)

    make_bucket(pair.dst, pair.dst_bucket)
    assert "4 task(s)" in pair.ml("replicate", "retry", "--all").stdout
    retried = eventually(lambda: (r := resync(pair))["replicated"] == 4 and r)
    assert (retried["failed"], retried["pending"], retried["enqueued"]) == (0, 0, 4)
    assert set(pair.target_latest()) == {f"f/{i:04}" for i in range(4)}


def walked(pair: Pair) -> tuple[int, bool]:
    """(scanned, counted) of the newest resync, read from the state file in a millisecond.

    The CLI takes about a second to start (more on a loaded machine), as long as the walk
    needs to cross the window the tests act in; a read-only query cannot miss it.
    """
    uri = f"file:{pair.state_dir / 'mirrorline.db'}?mode=ro"
    with sqlite3.connect(uri, uri=True, timeout=5) as db:
        row = db.execute("SELECT scanned, total FROM resyncs ORDER BY id DESC LIMIT 1").fetchone()
    return (row[0], row[1] is not None) if row else (0, False)


def throttled(pair: Pair, total: int, page: int) -> Any:
    """`total` old objects, a policy copying ~20 objects/s, a resync walking `page` at a time.

    The walk stays two pages ahead of the copies, so it too advances at ~20 objects/s:
    slow enough to act mid-walk on any machine (the second half takes 7 s).
    """
    old_objects(pair, "batch/", total, 2048)
    pair.add_policy("--replicate", "delete,delete-marker", "--bandwidth", "40KiB")
    engine = pair.start_engine()
    start(pair, "--page-size", str(page))
    eventually(lambda: (w := walked(pair))[1] and page * 3 <= w[0] <= total // 2, interval=0.02)
    mid = resync(pair)
    # The count beside the walk is exact, so the ETA is (several seconds at ~20 objects/s).
    assert mid["total"] == total and mid["phase"] == "walking" and mid["rate"] > 0
    assert mid["eta_seconds"] == (total - mid["scanned"]) / mid["rate"] < 60
    return engine


def test_resync_resumes_after_sigkill(pair: Pair) -> None:
    total, page = 300, 10
    engine = throttled(pair, total, page)
    assert pair.stop_engine(engine, signal.SIGKILL) == -signal.SIGKILL
    killed = resync(pair)
    assert killed["state"] == "running" and page * 3 <= killed["scanned"] < total
    # The checkpoint names the last key of the last page it queued, and counts agree.
    assert killed["cursor"] == f"batch/{killed['scanned'] - 1:04}"
    assert killed["enqueued"] == killed["scanned"]

    pair.start_engine()
    done = eventually(lambda: finished(pair), timeout=120)
    # Restarting from the beginning would scan ~killed + total, or (counters reset)
    # find the copies made before the kill on the target and queue fewer than total.
    assert total <= done["scanned"] <= total + page
    assert done["enqueued"] == total and done["replicated"] == total and done["failed"] == 0
    assert f"resync 1: resuming after '{killed['cursor']}'" in pair.engine_log()
    assert len(pair.target_latest()) == total


def test_resync_cancel_stops_the_walk(pair: Pair) -> None:
    total, page = 300, 10
    throttled(pair, total, page)
    assert (
        "Resync 1 cancelled"
        in pair.ml("replicate", "resync", "cancel", f"src/{pair.src_bucket}").stdout
    )
    stopped = resync(pair)
    assert stopped["state"] == "cancelled" and stopped["finished_at"]
    pair.scans_after("p1", 2)  # the engine ran on for two more full scans
    later = eventually(lambda: (r := resync(pair))["pending"] == 0 and r)
    for name in ("scanned", "enqueued", "cursor", "state"):
        assert later[name] == stopped[name], name
    assert later["scanned"] < total
    # The copies it had queued still ran; nothing past its cursor was copied.
    assert len(pair.target_latest()) == later["enqueued"] == later["replicated"]

    assert "Resync 2 of policy p1 started" in start(pair)  # a new one starts over
    done = eventually(lambda: finished(pair), timeout=120)
    assert done["id"] == 2 and done["scanned"] == total
    assert done["enqueued"] == total - later["enqueued"]
    assert len(pair.target_latest()) == total


def test_resync_bad_input_is_one_line_and_writes_nothing(pair: Pair) -> None:
    pair.add_policy()
    other = make_bucket(pair.dst, f"{pair.dst_bucket}-b")
    path = f"src/{pair.src_bucket}"
    pair.ml("replicate", "add", path, "--remote-target", f"dst/{other}", "--id", "p2")

    def fails(*args: str) -> str:
        result = pair.ml("replicate", "resync", *args, check=False)
        assert result.returncode == 1, result
        assert result.stderr.startswith("mirrorline: error: ")
        assert result.stderr.count("\n") == 1, result.stderr
        return result.stderr

    def rows() -> list[tuple[int, str, str]]:
        with sqlite3.connect(pair.state_dir / "mirrorline.db") as db:
            return db.execute("SELECT id, policy, state FROM resyncs ORDER BY id").fetchall()

    assert "no replication policy for src/nope" in fails("start", "src/nope")
    assert "expected ALIAS/BUCKET" in fails("status", "just-a-word")
    assert "no policy with id 'p9'" in fails("start", path, "--id", "p9")
    assert "no policy with id 'p9'" in fails("status", path, "--id", "p9")
    assert "no resync running" in fails("cancel", path)
    assert "no resync running" in fails("cancel", path, "--id", "p1")
    assert resyncs(pair) == [] and rows() == []

    assert "Resync 1 of policy p2 started" in start(pair, "--id", "p2")
    # Without --id a start acts on every policy of the bucket: all or none.
    assert "policy p2 is already running" in fails("start", path)
    assert "policy p2 is already running" in fails("start", path, "--id", "p2")
    assert rows() == [(1, "p2", "running")]

    assert "Resync 2 of policy p1 started" in start(pair, "--id", "p1")
    assert {(r["policy"], r["state"]) for r in resyncs(pair)} == {
        ("p1", "running"),
        ("p2", "running"),
    }
    assert [r["policy"] for r in resyncs(pair, "--id", "p1")] == ["p1"]
    cancelled = pair.ml("replicate", "resync", "cancel", path).stdout
    assert "Resync 1 cancelled" in cancelled and "Resync 2 cancelled" in cancelled
    assert "no resync running" in fails("cancel", path)
    assert rows() == [(1, "p2", "cancelled"), (2, "p1", "cancelled")]
    text = pair.ml("replicate", "resync", "status", path).stdout
    assert "cancelled" in text and "p1" in text and "p2" in text


async def test_forced_enqueue_passes_a_stale_map_but_not_a_fresh_copy(tmp_path: Path) -> None:
    """The queue side, without servers: what enqueue_resync lets through, and the counters."""
    db = await open_db(tmp_path / "state.db")
    state = stores(db, "state.db")
    queue, store = state.queue, state.resyncs
    (r,) = await store.start(["p1"], 10)

    def put(key: str, seen: str = "") -> NewTask:
        return NewTask(policy="p1", key=key, version_id="v1", op=Op.PUT, target_version=seen)

    await queue.enqueue([put("a"), put("b"), put("c")])
    a, b, c = await queue.claim(["p1"], 10, 60)
    await queue.complete(
        [
            Completion(a, Outcome.REPLICATED, 1, "t-a"),
            Completion(b, Outcome.REPLICATED, 1, "t-b2"),  # completed after the resync read t-b
            Completion(c, Outcome.SKIPPED, target_version=""),  # "nothing to copy" (NULL)
        ]
    )
    assert await queue.enqueue([put("a", "t-a")]) == 1, "the regular path re-copies t-a too"
    (again,) = await queue.claim(["p1"], 10, 60)
    await queue.complete([Completion(again, Outcome.ALREADY, 0, "t-a")])
    assert await queue.enqueue([put("c")]) == 0, "...but never past a NULL row"

    forced = [put("a", "t-a"), put("b", "t-b"), put("c")]
    async with db.tx() as conn:
        assert await enqueue_resync(conn, r.id, forced) == 2
    rows = {m.key: m.target_version for m in await queue.replicas(["p1"], "", None)}
    assert rows == {"b": "t-b2"}, "stale rows dropped; the fresh copy's row kept"

    first, second = await queue.claim(["p1"], 10, 60)
    await queue.complete([Completion(first, Outcome.REPLICATED, 1, "t-a3")])
    await queue.fail(second, "PUT: AccessDenied", "permanent")
    status = await store.get(r.id)
    assert (status.replicated, status.skipped, status.failed, status.pending) == (1, 0, 1, 0)
    # No policy p1 exists in this database (as after `replicate rm`): the runner's next
    # look ends the resync instead of walking for nobody.
    assert await store.running() == []
    gone = await store.get(r.id)
    assert (gone.state, gone.last_error) == ("failed", "policy removed")
    await db.close()
