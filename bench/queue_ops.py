"""Queue throughput: enqueue + claim + complete per second, batched.

    python bench/queue_ops.py [--tasks 100000] [--batch 500]

Prints one JSON line. Target (issue 2): >= 20,000 full task lifecycles per second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from engine.model import Completion, NewTask, Op, Outcome
from engine.state.sqlite.database import open_db
from engine.state.sqlite.queue import SQLiteQueue


async def run(total: int, batch: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        queue = SQLiteQueue(await open_db(Path(tmp) / "state.db"))
        tasks = [
            NewTask(policy="p", key=f"dir/{i:08d}", version_id=f"v{i}", op=Op.PUT, size=4096)
            for i in range(total)
        ]
        started = time.perf_counter()
        for i in range(0, total, batch):
            await queue.enqueue(tasks[i : i + batch])
        enqueued = time.perf_counter()
        done = 0
        while done < total:
            claimed = await queue.claim(["p"], batch, 60)
            await queue.complete(
                [Completion(t, Outcome.REPLICATED, t.size, f"t{t.id}") for t in claimed]
            )
            done += len(claimed)
        finished = time.perf_counter()
        counts = (await queue.counts())["p"]
        await queue.close()
    assert counts.replicated == total and counts.pending == 0
    return {
        "tasks": total,
        "batch": batch,
        "enqueue_per_s": round(total / (enqueued - started)),
        "claim_complete_per_s": round(total / (finished - enqueued)),
        "lifecycles_per_s": round(total / (finished - started)),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.tasks, args.batch))))


if __name__ == "__main__":
    main()
