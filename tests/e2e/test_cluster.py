"""Three `mirrorline run --queue postgresql://...` processes share one workload on real
S3 servers; one is SIGKILLed mid-run and the other two finish its work.

The nodes share one state dir too (aliases are per node, and here the same): the
SQLite lock that keeps one engine per state dir must not stop engines on PostgreSQL.
Each node is limited to 10 KiB/s (about 5 objects/s), so the work lasts long
enough for all three to take part and for the kill to land mid-run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from engine.demo.postgres import PgCluster
from tests.conftest import MIRRORLINE, Pair, eventually

OBJECTS = 150
HOT_WRITES = 12


def status(pair: Pair, url: str) -> dict[str, Any]:
    return json.loads(
        pair.ml("replicate", "status", "--json", env={"MIRRORLINE_QUEUE": url}).stdout
    )


def nodes(report: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {n["pid"]: n for n in (report["cluster"] or {"nodes": []})["nodes"]}


def drained(report: dict[str, Any]) -> bool:
    (p,) = report["policies"]
    return p["pending"] + p["in_flight"] + p["retrying"] == 0 and p["replicated"] >= OBJECTS


def test_three_nodes_share_the_work_and_survive_losing_one(pair: Pair, pg: PgCluster) -> None:
    url = pg.fresh_url(lease=3)
    schema = url.split("search_path=")[1].split("&")[0]
    queue = ("--queue", url)
    pair.ml("replicate", "add", f"src/{pair.src_bucket}", "--remote-target",
            f"dst/{pair.dst_bucket}", "--id", "p1", "--bandwidth", "10KiB", *queue)  # fmt: skip
    pair.ml("replicate", "pause", *queue)  # the work waits until all three are up
    pair.seed("batch/", OBJECTS, 2048)
    written = [os.urandom(512) for _ in range(HOT_WRITES)]
    for data in written:  # one key overwritten again and again: its versions run in order
        pair.put("hot", data)
    engines = [pair.start_engine(*queue) for _ in range(3)]

    def all_up() -> bool:
        report = nodes(status(pair, url))
        return len(report) == 3 and {n["state"] for n in report.values()} == {"up"}

    eventually(all_up, timeout=60)
    pair.ml("replicate", "resume", *queue)

    # Every node copies part of it (each reports what it copied with its heartbeat)...
    # (Read from the database: a CLI start-up takes seconds on a loaded machine.)
    def copied() -> dict[int, int]:
        rows = pg.psql(f"SELECT pid, replicated FROM {schema}.nodes").splitlines()
        return {int(pid): int(n) for pid, n in (row.split("|") for row in rows)}

    eventually(lambda: all(copied().get(e.pid, 0) > 0 for e in engines), timeout=60)
    victim, *survivors = engines
    assert pair.stop_engine(victim, signal.SIGKILL) == -signal.SIGKILL
    left = pg.psql(f"SELECT sum(count) FROM {schema}.counters WHERE state <> 'failed'")
    assert int(left) > 0, "the kill must land mid-run"

    # ...the killed one shows as gone within its lease, and its leases are taken over.
    eventually(lambda: nodes(status(pair, url))[victim.pid]["state"] == "gone", timeout=30)
    final = eventually(lambda: (r := status(pair, url)) and drained(r) and r, timeout=120)
    (p,) = final["policies"]
    assert p["failed"] == 0
    assert final["cluster"]["up"] == 2
    assert all(nodes(final)[e.pid]["state"] == "up" for e in survivors)

    # The independent verifier: the target's live objects, read back, equal the source's.
    source, target = pair.source_latest(), pair.target_latest()
    assert len(source) == OBJECTS + 1
    assert target == source
    assert target["hot"] == written[-1], "the newest of the hot key's versions is on top"
    for engine in survivors:
        assert pair.stop_engine(engine) == 0


def test_a_queue_address_is_checked_and_its_password_never_shown(tmp_path: Path) -> None:
    def ml(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        command = [*MIRRORLINE, "--state-dir", str(tmp_path), "replicate", "ls", *args]
        return subprocess.run(
            command, capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
        )

    typed = ml("--queue", "postgresql://me:hunter2-secret@127.0.0.1:1/db")
    assert typed.returncode == 1 and "~/.pgpass" in typed.stderr
    unreachable = ml(env={"MIRRORLINE_QUEUE": "postgresql://me:hunter2-secret@127.0.0.1:1/db"})
    assert unreachable.returncode == 1
    assert "cannot open the queue database postgresql://me@127.0.0.1:1/db" in unreachable.stderr
    wrong = ml("--queue", "mysql://me@db/x")
    assert wrong.returncode == 1 and "expected postgresql://" in wrong.stderr
    for result in (typed, unreachable, wrong):
        assert "hunter2" not in result.stdout + result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
