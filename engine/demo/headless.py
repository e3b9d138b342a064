"""`mirrorline demo --headless`: the demo without the console, for scripts, CI and recordings.

It runs the same lab, engine and traffic as the console demo for a fixed time, prints
a progress line every few seconds and, with `faults`, a scripted sequence of link
faults as each one starts. Then the traffic stops, the engine is given time to catch
up, and the target is checked against the source with `replicate verify`'s own code
(every byte, headers, user metadata and tags of every live object, and no object on
the target that the source has deleted). The exit status is 0 only if they match.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.aliases import AliasBook
from engine.checks.verify import PolicyReport, verify_policy
from engine.demo.session import DemoSession
from engine.demo.stage import demo_config, staged
from engine.engine import Engine
from engine.errors import MirrorlineError
from engine.telemetry.snapshot import Snapshot

Say = Callable[[str], None]
CATCH_UP = 180.0  # seconds the engine gets to drain after the traffic stops


@dataclass(frozen=True)
class Step:
    """One scripted fault: when (share of the run), what, and the line printed for it."""

    at: float
    action: str  # a DemoSession control
    label: str


SCRIPT = (
    Step(0.15, "cut", "link cut: new connections refused, open ones dropped"),
    Step(0.35, "heal", "link healed"),
    Step(0.45, "latency", "latency +300 ms each way"),
    Step(0.55, "heal", "link healed"),
    Step(0.60, "resets", "connections reset after 256 KiB of request body"),
    Step(0.75, "heal", "link healed"),
)


@dataclass
class Summary:
    duration: float
    ops: int
    replicated: int
    failed: int
    retries: int
    faults: int
    lag_p50: float
    lag_p99: float
    latency_p50: float
    latency_p99: float
    caught_up_in: float | None
    reports: list[PolicyReport]

    @property
    def verified(self) -> bool:
        return self.caught_up_in is not None and all(not r.differences for r in self.reports)

    def lines(self) -> list[str]:
        checked = sum(r.checked for r in self.reports)
        differences = [d for r in self.reports for d in r.differences]
        caught = f"{self.caught_up_in:.1f} s" if self.caught_up_in is not None else "no (timed out)"
        out = [
            f"summary: {self.ops} operations on the source in {self.duration:.0f} s, "
            f"{self.replicated} replicated, {self.failed} failed, {self.retries} retried errors, "
            f"{self.faults} faults injected",
            f"lag (oldest pending, sampled each tick): p50 {self.lag_p50:.2f} s, "
            f"p99 {self.lag_p99:.2f} s; engine latency last minute: p50 {self.latency_p50:.2f} s, "
            f"p99 {self.latency_p99:.2f} s",
            f"caught up after the traffic stopped: {caught}",
            f"verify: {checked} live objects compared, {len(differences)} differences",
        ]
        out += [f"  {d.policy}: {d.status} {d.key!r}: {d.detail}" for d in differences[:20]]
        out.append("target == source" if self.verified else "TARGET DIFFERS FROM SOURCE")
        return out


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def progress(snap: Snapshot, session: DemoSession, elapsed: float) -> str:
    backlog = sum(
        p.backlog.pending + p.backlog.in_flight + p.backlog.retrying for p in snap.policies
    )
    replicated = sum(p.backlog.replicated for p in snap.policies)
    lag = max((p.backlog.oldest_pending_age for p in snap.policies), default=0.0)
    links = ", ".join(
        f"{link.alias} {'online' if link.online else 'OFFLINE'}" for link in snap.links
    )
    state = session.state()
    return (
        f"[{elapsed:5.1f}s] ops {state.ops}  replicated {replicated}  backlog {backlog}  "
        f"lag {lag:.1f}s  {links}  fault: {state.fault}"
    )


async def run_headless(
    root: Path,
    duration: float,
    rate: float,
    faults: bool = False,
    events: bool = False,
    clean: bool = False,
    seed: int = 1,
    say: Say = print,
    every: float = 5.0,
) -> Summary:
    """Run the demo for `duration` seconds and return what happened (printing as it goes)."""
    started = time.monotonic()
    async with staged(root, rate, seed, events, clean) as stage:
        lab = stage.lab
        say(
            f"stores up in {time.monotonic() - started:.1f} s: source {lab.source.endpoint}, "
            f"target {lab.target.endpoint} (the engine reaches it through the fault proxy); "
            f"API on {stage.api}"
        )
        engine = Engine(demo_config(root), stage.attachments)
        stop = asyncio.Event()
        running = asyncio.create_task(engine.run(stop))
        try:
            return await _drive(engine, running, stage.session, duration, faults, say, every)
        finally:
            stop.set()
            await running


async def _drive(
    engine: Engine,
    running: asyncio.Task[None],
    session: DemoSession,
    duration: float,
    faults: bool,
    say: Say,
    every: float,
) -> Summary:
    ready = asyncio.create_task(session.ready.wait())
    await asyncio.wait({ready, running}, return_when=asyncio.FIRST_COMPLETED)
    if running.done():
        running.result()  # the engine's start-up error
        raise MirrorlineError("the engine stopped while starting")
    t0 = time.monotonic()
    script = list(SCRIPT if faults else ())
    lags: list[float] = []
    next_line = 0.0
    while (elapsed := time.monotonic() - t0) < duration:
        while script and elapsed >= script[0].at * duration:
            step = script.pop(0)
            getattr(session, step.action)()
            say(f"[{elapsed:5.1f}s] fault: {step.label}")
        snap = engine.snapshot
        if snap is not None and elapsed >= next_line:
            lags.append(max((p.backlog.oldest_pending_age for p in snap.policies), default=0.0))
            say(progress(snap, session, elapsed))
            next_line += every
        await asyncio.sleep(0.2)
    session.heal()
    session.set_rate(0)
    say(f"[{duration:5.1f}s] traffic stopped; waiting for the engine to catch up")
    caught = await _caught_up(engine, time.monotonic() + CATCH_UP)
    snap = await engine.refresh()
    say(progress(snap, session, time.monotonic() - t0))
    book = AliasBook(engine.config.state_dir / "aliases.json")
    reports = []
    for policy in engine.policies.values():
        reports.append(await verify_policy(policy, book, concurrency=8))
    minute = [p.latency.get("1m", {}).get("all") for p in snap.policies]
    minute = [m for m in minute if m and m.count]
    return Summary(
        duration=duration,
        ops=session.state().ops,
        replicated=sum(p.backlog.replicated for p in snap.policies),
        failed=sum(p.backlog.failed for p in snap.policies),
        retries=sum(sum(p.errors.since_start.values()) for p in snap.policies),
        faults=sum(1 for s in SCRIPT if s.action != "heal") if faults else 0,
        lag_p50=_percentile(lags, 50),
        lag_p99=_percentile(lags, 99),
        latency_p50=max((m.p50 for m in minute), default=0.0),
        latency_p99=max((m.p99 for m in minute), default=0.0),
        caught_up_in=caught,
        reports=reports,
    )


async def _caught_up(engine: Engine, deadline: float) -> float | None:
    """Seconds until nothing is left: every policy scanned again after the traffic, a whole
    tag sweep begun after it (tag changes leave no trace in a listing), nothing queued."""
    start = time.monotonic()
    scans = dict(engine.detector.scan_count)
    sweeps = dict(engine.detector.sweeps)

    def covered() -> bool:
        detector = engine.detector
        return all(
            detector.scan_count.get(pid, 0) > scans.get(pid, 0)
            and detector.sweeps.get(pid, 0) >= sweeps.get(pid, 0) + 2
            for pid in engine.policies
        )

    while time.monotonic() < deadline:
        if covered() and await engine.synced():
            return time.monotonic() - start
        await asyncio.sleep(0.25)
    return None
