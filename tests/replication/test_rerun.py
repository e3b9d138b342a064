"""A task run again after its engine died (rerun.held), on MemoryStores: what the dead
attempt sent may land after the new one looked, and must not be copied a second time.

The same stories against SeaweedFS, with the engine SIGKILLed for real and the dead
request held in a proxy: tests/e2e/test_fault_rerun.py.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import replace

from engine.errors import AccessDeniedError
from engine.model import Outcome
from engine.replication.transfer import execute
from engine.s3.memory import MIN_PART, Call, fail
from tests.replication.conftest import DST, POLICY, Rig
from tests.replication.test_transfer import put_source


def gate_on(release_at: str, held_op: str) -> tuple[asyncio.Event, object]:
    """A hook holding the first `held_op` call until a `release_at` call is made."""
    gate, held = asyncio.Event(), asyncio.Event()

    async def hook(call: Call) -> None:
        if call.op == release_at and held.is_set():
            gate.set()
        if call.op == held_op and not held.is_set():
            held.set()
            await gate.wait()

    return held, hook


async def test_a_completion_in_flight_is_waited_for_and_nothing_is_uploaded_again(
    rig: Rig,
) -> None:
    data = os.urandom(2 * MIN_PART + 100)
    task = await put_source(rig, "big.bin", data)
    ctx = rig.context(POLICY)
    held, rig.target.hook = gate_on("pending_uploads", "complete_multipart")
    dead = asyncio.create_task(execute(task, ctx))  # the killed engine's attempt
    await held.wait()  # every part is up; its completion is on its way
    ctx.settle_until = time.monotonic() + 30
    again = await execute(replace(task, target_has_key=True, attempts=2), ctx)
    first = await dead
    assert (again.outcome, again.target_version) == (Outcome.ALREADY, first.target_version)
    assert len(rig.target.versions(DST, "big.bin")) == 1 and rig.target.uploads == {}
    assert [c.op for c in rig.target.calls].count("create_multipart") == 1


async def test_an_upload_with_parts_missing_is_aborted_and_the_copy_made_once(rig: Rig) -> None:
    data = os.urandom(2 * MIN_PART + 100)
    task = await put_source(rig, "big.bin", data)
    orphan = await rig.target.create_multipart(DST, "big.bin", {})
    await rig.target.upload_part(DST, "big.bin", orphan, 1, data[:MIN_PART], "", MIN_PART)
    other = await rig.target.create_multipart(DST, "big.bin.other", {})  # another key's
    ctx = rig.context(POLICY)
    ctx.settle_until = time.monotonic() + 30  # no waiting on an upload that cannot complete
    started = time.monotonic()
    done = await execute(replace(task, target_has_key=True, attempts=2), ctx)
    assert done.outcome is Outcome.REPLICATED and time.monotonic() - started < 25
    assert [v.data for v in rig.target.versions(DST, "big.bin")] == [data]
    assert list(rig.target.uploads) == [other]


async def test_a_put_landing_late_is_found_within_the_settling_window(rig: Rig) -> None:
    task = await put_source(rig, "k", b"small")
    ctx = rig.context(POLICY)
    held, rig.target.hook = gate_on("list_versions", "put")
    dead = asyncio.create_task(execute(task, ctx))
    await held.wait()
    ctx.settle_until = time.monotonic() + 1.0
    again = await execute(replace(task, target_has_key=True, attempts=2), ctx)
    first = await dead
    assert (again.outcome, again.target_version) == (Outcome.ALREADY, first.target_version)
    assert len(rig.target.versions(DST, "k")) == 1


async def test_a_first_attempt_neither_lists_uploads_nor_waits(rig: Rig) -> None:
    data = os.urandom(2 * MIN_PART + 100)
    task = await put_source(rig, "big.bin", data)
    ctx = rig.context(POLICY)
    ctx.settle_until = time.monotonic() + 30
    started = time.monotonic()
    done = await execute(replace(task, target_has_key=True, attempts=1), ctx)
    assert done.outcome is Outcome.REPLICATED and time.monotonic() - started < 25
    ops = [c.op for c in rig.target.calls]
    assert "pending_uploads" not in ops and "list_versions" not in ops
    assert ops.count("head") == 1


async def test_a_store_that_will_not_list_uploads_still_gets_its_copy(rig: Rig) -> None:
    """A replication key without s3:ListBucketMultipartUploads: the re-run copies anyway."""
    data = os.urandom(2 * MIN_PART + 100)
    task = await put_source(rig, "big.bin", data)
    rig.target.hook = fail(AccessDeniedError("list uploads: denied"), op="pending_uploads")
    done = await execute(replace(task, target_has_key=True, attempts=2), rig.context(POLICY))
    assert done.outcome is Outcome.REPLICATED
    assert [v.data for v in rig.target.versions(DST, "big.bin")] == [data]
