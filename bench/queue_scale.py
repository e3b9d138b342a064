"""The SQLite queue under a growing backlog: lifecycles/s at 0 to 1,000,000 pending tasks.

    python bench/queue_scale.py [--levels 0,100000,500000,1000000] [--lifecycles 50000]
                                [--batch 500] [--rounds 3] [--json-out PATH]

A lifecycle is one task enqueued, claimed and completed, through the engine's own
SQLiteQueue on a real state database file (WAL, the engine's pragmas, triggers
keeping the counters, completions writing the replica map). At each level the
backlog is first filled to that many pending tasks of the same policy; then
batches of `batch` are enqueued, claimed and completed in turn, so the backlog
stays at its level while the claims take its oldest tasks (what a copy under a
large backlog does). Rounds at each level are timed apart and their median kept.

Also reported: the database size per million tasks (file + WAL after a
checkpoint), and the time of a `counts()` read (what `status` shows), median of
50, at each level. Keys are in listing order, as a scan enqueues them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from engine.model import Completion, NewTask, Op, Outcome  # noqa: E402
from engine.state.sqlite.database import open_db  # noqa: E402
from engine.state.sqlite.queue import SQLiteQueue  # noqa: E402

LEVELS = (0, 100_000, 500_000, 1_000_000)
FILL_BATCH = 5000


class Scale:
    def __init__(self, queue: SQLiteQueue, path: Path) -> None:
        self.queue, self.path, self.next_key = queue, path, 0

    def tasks(self, n: int) -> list[NewTask]:
        start, self.next_key = self.next_key, self.next_key + n
        return [
            NewTask(policy="p", key=f"dir/{i:09d}", version_id=f"v{i}", op=Op.PUT, size=4096)
            for i in range(start, start + n)
        ]

    async def fill(self, pending: int) -> None:
        have = (await self.queue.counts()).get("p")
        missing = pending - (have.pending if have else 0)
        while missing > 0:
            n = min(FILL_BATCH, missing)
            await self.queue.enqueue(self.tasks(n))
            missing -= n

    async def lifecycles(self, total: int, batch: int) -> tuple[float, float]:
        """(lifecycles per second of wall, CPU us per lifecycle) over `total`, in batches.
        CPU is the process's, both threads (the loop's and aiosqlite's): on a loaded
        machine it moves far less than wall time does."""
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(total // batch):
            await self.queue.enqueue(self.tasks(batch))
            claimed = await self.queue.claim(["p"], batch, 60)
            await self.queue.complete(
                [Completion(t, Outcome.REPLICATED, t.size, f"t{t.id}") for t in claimed]
            )
        done = (total // batch) * batch
        return done / (time.perf_counter() - started), 1e6 * (time.process_time() - cpu) / done

    async def status_ms(self, reads: int = 50) -> float:
        times = []
        for _ in range(reads):
            started = time.perf_counter()
            await self.queue.counts()
            times.append(time.perf_counter() - started)
        return 1000 * statistics.median(times)

    async def size_bytes(self) -> int:
        await self.queue._db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        files = [self.path, self.path.with_name(self.path.name + "-wal")]
        return sum(f.stat().st_size for f in files if f.exists())


async def measure(
    levels: Sequence[int], lifecycles: int, batch: int, rounds: int
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="queue-scale-") as tmp:
        path = Path(tmp) / "state.db"
        queue = SQLiteQueue(await open_db(path))
        scale = Scale(queue, path)
        rows = []
        try:
            for level in levels:
                fill_started = time.perf_counter()
                await scale.fill(level)
                filled = time.perf_counter() - fill_started
                timed = [await scale.lifecycles(lifecycles, batch) for _ in range(rounds)]
                rates = [wall for wall, _ in timed]
                cpu = statistics.median(us for _, us in timed)
                pending = (await queue.counts())["p"].pending
                row = {
                    "pending": pending,
                    "lifecycles_per_s": round(statistics.median(rates)),
                    "rounds": [round(r) for r in rates],
                    "cpu_us_per_lifecycle": round(cpu, 1),
                    "lifecycles_per_cpu_s": round(1e6 / cpu),
                    "status_ms": round(await scale.status_ms(), 3),
                    "db_bytes": await scale.size_bytes(),
                    "fill_s": round(filled, 1),
                    "load_average": round(os.getloadavg()[0], 2),
                }
                rows.append(row)
                print(
                    f"  {pending:>9} pending  {row['lifecycles_per_s']:>7} lifecycles/s "
                    f"{row['rounds']}  CPU {row['cpu_us_per_lifecycle']} us "
                    f"({row['lifecycles_per_cpu_s']}/CPU-s)  status {row['status_ms']:.2f} ms  "
                    f"db {row['db_bytes'] / 2**20:7.1f} MiB  load {row['load_average']}",
                    file=sys.stderr,
                    flush=True,
                )
        finally:
            await queue.close()
    rates = [r["lifecycles_per_s"] for r in rows]
    cpu_rates = [r["lifecycles_per_cpu_s"] for r in rows]
    top = max(rows, key=lambda r: r["pending"])
    return {
        "bench": "queue_scale",
        "batch": batch,
        "lifecycles_per_level": lifecycles,
        "levels": rows,
        "min_lifecycles_per_s": min(rates),
        "flatness": round(min(rates) / max(rates), 3),  # 1.0 = flat; target >= 0.8
        "cpu_flatness": round(min(cpu_rates) / max(cpu_rates), 3),
        "db_mib_per_million": round(top["db_bytes"] / 2**20 / max(top["pending"], 1) * 1e6, 1),
        "status_ms_at_top": top["status_ms"],
    }


def run(quick: bool) -> dict[str, Any]:
    """The suite's entry point: quick stops at 100k pending."""
    levels = (0, 100_000) if quick else LEVELS
    return asyncio.run(measure(levels, 20_000 if quick else 50_000, 500, 3))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)))
    parser.add_argument("--lifecycles", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)
    try:
        levels = sorted(int(x) for x in args.levels.split(","))
    except ValueError:
        parser.error("--levels: comma-separated task counts")
    if min(levels) < 0 or args.batch < 1 or args.lifecycles < args.batch or args.rounds < 1:
        parser.error("levels >= 0, batch >= 1, lifecycles >= batch, rounds >= 1")
    summary = asyncio.run(measure(levels, args.lifecycles, args.batch, args.rounds))
    line = json.dumps(summary)
    if args.json_out is not None:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(line + "\n")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
