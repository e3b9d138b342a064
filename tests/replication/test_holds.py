"""Why dispatch is held, as status shows it: each reason built on the in-memory rig."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from engine.replication.bandwidth import TokenBucket
from engine.replication.budget import ByteBudget
from engine.replication.holds import HELD_AFTER, hold_of, short
from engine.s3.memory import MIN_PART, Call
from tests.replication.conftest import POLICY, SRC, Rig, until


async def hold(rig: Rig, policy: str = "p1", later: float = 0.0) -> str:
    """The policy's hold now, or as it will read `later` seconds on."""
    pending = (await rig.queue.counts()).get(policy)
    route = rig.dispatcher.routes[policy]
    count = pending.pending if pending else 0
    return hold_of(policy, route, rig.dispatcher, count, time.time() + later)


def gate_on(rig: Rig, op: str, key: str) -> asyncio.Event:
    gate = asyncio.Event()

    async def held(call: Call) -> None:
        if call.op == op and call.key == key:
            await gate.wait()

    rig.target.hook = held
    return gate


async def test_a_newer_version_waiting_for_the_older_one_names_the_key(rig: Rig) -> None:
    await rig.add(POLICY)
    await rig.source.put(SRC, "big.iso", b"v1", {})
    gate = gate_on(rig, "put", "big.iso")
    await rig.scan(POLICY)
    rig.dispatcher.wake()
    await until(lambda: rig.dispatcher.in_flight)
    assert await hold(rig) == ""  # one copy running, nothing waiting: flowing
    await rig.source.put(SRC, "big.iso", b"v2", {})
    await rig.scan(POLICY)  # the new version is pending, its key busy: nothing to claim
    rig.dispatcher.wake()
    held = "waiting: older version of big.iso in flight"
    assert await until(lambda: hold(rig, later=HELD_AFTER)) == held
    assert await hold(rig) == ""  # a copy only just running: order, not yet a hold
    gate.set()
    await rig.settle()
    assert await hold(rig) == ""


async def test_an_offline_link_comes_first_and_says_which_end(rig: Rig) -> None:
    await rig.add(POLICY)
    rig.links["dst"].mark_offline("connection refused")
    rig.links["dst"].since -= 150
    assert await hold(rig) == "waiting: dst offline 2m"
    rig.links["src"].mark_offline("connection refused")
    assert (await hold(rig)).startswith("waiting: src offline ")


async def test_a_bucket_in_debt_is_throttled(rig: Rig) -> None:
    await rig.add(POLICY)
    route = rig.dispatcher.routes["p1"]
    limit = TokenBucket(1024)
    route.context = replace(route.context, limit=limit)
    assert await hold(rig) == ""
    sending = asyncio.create_task(limit.take(8 * 1024))  # 8 s of debt: senders sleep
    await asyncio.sleep(0)
    assert await hold(rig) == "throttled"
    sending.cancel()


async def test_an_upload_starved_of_part_budget_is_the_multipart_budget(rig: Rig) -> None:
    await rig.add(POLICY)
    route = rig.dispatcher.routes["p1"]
    route.context = replace(route.context, part_budget=ByteBudget(MIN_PART))  # one part
    for key in ("a.bin", "b.bin"):  # past multipart_from: three parts each
        await rig.source.put(SRC, key, b"x" * (2 * MIN_PART + 1), {})
    gate = asyncio.Event()

    async def parts_wait(call: Call) -> None:
        if call.op == "upload_part":
            await gate.wait()

    rig.target.hook = parts_wait
    await rig.scan(POLICY)
    rig.dispatcher.wake()
    # One upload holds the whole budget; the other has none of it and waits.
    assert await until(lambda: hold(rig)) == "multipart budget"
    gate.set()
    await rig.settle()
    assert await hold(rig) == ""


def test_durations_fit_a_table_cell() -> None:
    assert [short(s) for s in (0, 59, 60, 150, 3600, 90000)] == [
        "0s",
        "59s",
        "1m",
        "2m",
        "1h",
        "1d",
    ]
