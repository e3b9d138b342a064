"""SIGKILL the engine again and again through one run; the end state is still exact.

`mirrorline run` is a real subprocess; each kill lands at a moment read from its own
state database (polled read-only every 20 ms), spread over the run's phases: the first
scan, small copies, multipart copies with parts on the wire, and the last few tasks.
After the tenth kill one more engine runs until synced, and the verifier compares every
version on both stores and the engine's ledger.

Full size (the issue's 2,000 objects) is the default; `MIRRORLINE_FAULT_OBJECTS=400`
is the CI size when the budget asks for it.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest

from tests.conftest import Pair, eventually
from tests.faultkit import IN_PARTS, OBJECTS, Plan, Progress, db_of, progress, seed
from tests.mirror import assert_ledger_agrees, assert_mirrored, duplicated, unfinished_uploads

# Ten engine lives and a full read of both buckets: past the suite's 300 s on a loaded machine.
pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(1200)]

Moment = tuple[str, Callable[[Progress, int], bool]]


def landed(share: float) -> Callable[[Progress, int], bool]:
    return lambda p, versions: p.landed >= share * versions


def multipart(p: Progress, versions: int) -> bool:
    return p.multipart > 0


MOMENTS: list[Moment] = [
    ("scan", lambda p, versions: p.tasks + p.landed > 0),  # the first page is queued
    ("copy", landed(0.05)),
    ("multipart", multipart),
    ("copy", landed(0.25)),
    ("multipart", multipart),
    ("copy", landed(0.45)),
    ("multipart", multipart),
    ("copy", landed(0.65)),
    ("multipart", multipart),
    ("completion", landed(0.97)),
]


def parts_on_the_wire(pair: Pair) -> bool:
    """The target holds an unfinished multipart upload: parts are being sent."""
    uploads = pair.dst._list_multipart_uploads(pair.dst_bucket)
    return bool(uploads.uploads)


def kill_at(
    pair: Pair, moment: Moment, versions: int, before: Progress | None
) -> tuple[str, Progress, float]:
    """Start an engine, SIGKILL it at `moment`: (the phase it was in, its progress, its life).

    After the first life the database still shows the dead engine's tasks in flight until
    the new one starts: a kill waits until this engine has landed a version of its own, so
    that each of the ten kills lands on a running engine."""
    name, reached = moment
    born = time.monotonic()
    engine = pair.start_engine(*IN_PARTS)

    def due() -> Progress | None:
        now = progress(pair.state_dir)
        if now is None or not reached(now, versions):
            return None
        if before is not None and now.landed <= before.landed:
            return None
        if name == "multipart" and not parts_on_the_wire(pair):
            return None
        return now

    at = eventually(due, timeout=120, interval=0.02)
    assert pair.stop_engine(engine, signal.SIGKILL) == -signal.SIGKILL, pair.engine_log()[-2000:]
    return at.phase(versions, before is None), at, time.monotonic() - born


def test_ten_sigkills_through_a_run_lose_nothing_and_copy_nothing_twice(pair: Pair) -> None:
    plan = Plan(OBJECTS)
    started = time.monotonic()
    seed(pair.src, pair.src_bucket, plan)
    seeded = time.monotonic() - started
    # Paced so the run lasts long enough for ten kills wherever the machine's speed.
    pair.add_policy("--bandwidth", "8MiB")
    kills: list[tuple[str, Progress, float]] = []
    for moment in MOMENTS:
        kills.append(kill_at(pair, moment, plan.versions, kills[-1][1] if kills else None))
    phases = [phase for phase, _, _ in kills]
    print(f"{plan.objects} objects, {plan.versions} versions; seeded in {seeded:.1f}s")
    for n, (phase, at, lived) in enumerate(kills, 1):
        print(
            f"kill {n} after {lived:.1f}s: {phase} "
            f"({at.landed} landed, {at.active} active, {at.multipart} multipart in flight)"
        )
    assert phases[0] == "scan" or kills[0][1].landed == 0
    assert phases.count("multipart") >= 3, phases
    assert phases[-1] == "completion", phases
    final = pair.start_engine("--until-synced", *IN_PARTS)
    assert final.wait(300) == 0, pair.engine_log()[-3000:]
    drained = time.monotonic() - started
    checked = time.monotonic()
    doubled = duplicated(pair)
    assert not doubled, f"after a SIGKILL a task run again copied a version twice: {doubled}"
    figures, source, target = assert_mirrored(pair.src, pair.src_bucket, pair.dst, pair.dst_bucket)
    assert unfinished_uploads(pair.dst, pair.dst_bucket) == [], "a dead run's upload was left"
    ledger = assert_ledger_agrees(db_of(pair.state_dir), "p1", source, target)
    print(
        f"10 kills survived, run {drained:.1f}s; verified {figures} in {time.monotonic() - checked:.1f}s"
    )
    print(f"ledger: {ledger.replicated} replicated, {ledger.skipped} skipped")
    assert figures.versions == plan.versions and figures.keys == plan.objects
