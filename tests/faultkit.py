"""What the fault suite shares: its size, a seeded workload of real objects, and a cheap
look at the engine's progress (its state database, read-only, polled every few ms).

The size comes from $MIRRORLINE_FAULT_OBJECTS (default: the issue's 2,000 objects); CI
may set it lower to fit its budget, and the full size stays one command away.
"""

from __future__ import annotations

import io
import os
import random
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from minio import Minio
from minio.commonconfig import Tags

MiB = 1024 * 1024
PART_SIZE = 8 * MiB  # the engine's part size
# The suite's big objects (9-10 MiB) go in parts, as the issue asks: the engine's default
# cut-off (256 MiB) would stream them in one PUT.
IN_PARTS = ("--multipart-from", "8MiB")
OBJECTS = int(os.environ.get("MIRRORLINE_FAULT_OBJECTS", "2000"))
WRITERS = 8


def db_of(state_dir: Path) -> Path:
    return state_dir / "mirrorline.db"


@dataclass(frozen=True)
class Plan:
    """A seeded mix: `objects` keys, every `big_every`-th one multipart, some with a second
    version, some tagged, some deleted (a delete marker on top); all with user metadata."""

    objects: int
    multipart: int = 8  # objects of 9-10 MiB, spread evenly through the key order
    seed: int = 11

    def big(self, n: int) -> bool:
        if not self.multipart:
            return False
        every = max(self.objects // self.multipart, 1)
        return n % every == every // 2 and n // every < self.multipart

    @property
    def versions(self) -> int:
        """Versions (delete markers included) the source ends with."""
        return self.objects + sum(1 for n in range(self.objects) if n % 20 == 3 or n % 40 == 7)


def _write(client: Minio, bucket: str, plan: Plan, n: int) -> None:
    rng = random.Random(plan.seed * 1_000_003 + n)
    key = f"w/{n % 7}/obj-{n:05}{' ünï' if n % 50 == 9 else ''}.bin"
    size = PART_SIZE + MiB + rng.randrange(MiB) if plan.big(n) else rng.randrange(1, 6 * 1024)
    tags = None
    if n % 5 == 1:
        tags = Tags(for_object=True)
        tags.update({"team": f"t{n % 3}", "n": str(n)})
    meta = {"writer": "faultkit", "n": str(n)}
    body = rng.randbytes(size)
    client.put_object(bucket, key, io.BytesIO(body), size, metadata=meta, tags=tags)
    if n % 20 == 3:  # overwritten: a second version, different bytes
        client.put_object(bucket, key, io.BytesIO(body[::-1]), size, metadata={"v": "2"})
    if n % 40 == 7:
        client.remove_object(bucket, key)  # a delete marker on top


def seed(client: Minio, bucket: str, plan: Plan) -> None:
    """Write the plan's objects, in parallel (SeaweedFS takes ~1,000 small PUTs/s)."""
    with ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(lambda n: _write(client, bucket, plan, n), range(plan.objects)))


@dataclass(frozen=True)
class Progress:
    """The engine's progress as its database records it."""

    landed: int  # source versions in the replica map
    tasks: int  # rows in the queue (any state)
    active: int  # pending, in flight or retrying
    multipart: int  # multipart copies in flight
    failed: int

    def phase(self, versions: int, first_run: bool) -> str:
        """Where the run is: the names the crash test spreads its kills over."""
        if first_run and self.landed + self.tasks < versions:
            return "scan"
        if self.landed >= 0.95 * versions:
            return "completion"
        return "multipart" if self.multipart else "copy"


def progress(state_dir: Path, policy: str = "p1") -> Progress | None:
    """None while the database is not there yet (the engine is still starting)."""
    db = db_of(state_dir)
    if not db.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            (landed,) = conn.execute(
                "SELECT count(*) FROM replicas WHERE policy = ?", (policy,)
            ).fetchone()
            states = dict(
                conn.execute(
                    "SELECT state, count(*) FROM tasks WHERE policy = ? GROUP BY state", (policy,)
                ).fetchall()
            )
            (multipart,) = conn.execute(
                "SELECT count(*) FROM tasks WHERE policy = ? AND state = 'in-flight' AND size > ?",
                (policy, PART_SIZE),
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return None  # not migrated yet, or mid-checkpoint: ask again
    failed = states.get("failed", 0)
    return Progress(landed, sum(states.values()), sum(states.values()) - failed, multipart, failed)
