"""Telemetry: the one set of numbers every view reads, kept honest across restarts.

Backlog numbers come from the queue's counters (kept by triggers in the same
transaction as each state change, so they cannot drift from the tasks). What
only a running engine sees (bytes as they stream, latencies, errors, links)
is counted in memory by the copy path at O(1) per event, and written to the
state database every 10 s: totals, peaks, error counts, latency histograms
and one history row per policy. A restart loads them back, so no counter
resets and a chart drawn right after a start already has its past.

Latency is source last-modified -> committed on the target; for objects that
predate their policy it is counted from the policy's creation, since nobody
asked for them to be copied before then.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, fields, replace

from engine.errors import MirrorlineError, reason_code
from engine.model import Completion, Counts, Op, Outcome
from engine.policy import Policy
from engine.state.stores import TelemetryStore
from engine.telemetry.meter import Meter
from engine.telemetry.snapshot import (
    Backlog,
    Errors,
    HistoryPoint,
    Latency,
    PolicyStats,
    Rate,
    size_class,
)

SLOT = 10.0  # seconds per history row and per window slot
HISTORY_KEEP = 24 * 3600.0
WINDOWS = {"1m": 60.0, "1h": 3600.0}
# Prometheus histogram bounds, seconds (cumulative counts persist across restarts).
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
_BIN_BASE, _BIN_RATIO = 0.001, 1.1  # percentile bins: 1 ms up, 10% wide (within 5%)


def _bin(seconds: float) -> int:
    return max(0, int(math.log(max(seconds, _BIN_BASE) / _BIN_BASE, _BIN_RATIO)))


def _bin_value(index: int) -> float:
    return _BIN_BASE * _BIN_RATIO ** (index + 0.5)


def percentiles(bins: Counter[int]) -> Latency:
    total = sum(bins.values())
    if not total:
        return Latency()
    wanted = {q: math.ceil(total * q / 100) for q in (50, 95, 99)}
    found: dict[int, float] = {}
    seen = 0
    for index in sorted(bins):
        seen += bins[index]
        for q, rank in wanted.items():
            if q not in found and seen >= rank:
                found[q] = round(_bin_value(index), 4)
    return Latency(total, found[50], found[95], found[99])


class Window:
    """Counts over the last hour in 10 s slots, with running minute and hour sums.

    Adding is O(1): expiry runs once per new slot, and a slot leaving a window
    is subtracted once, so reading the last minute or hour never re-adds 360 slots.
    """

    def __init__(self) -> None:
        self._slots: deque[tuple[float, Counter[tuple[str, ...]]]] = deque()
        self.sums: dict[str, Counter[tuple[str, ...]]] = {w: Counter() for w in WINDOWS}
        self._edge = dict.fromkeys(WINDOWS, 0)  # slots already subtracted, per window

    def add(self, key: tuple[str, ...], now: float, n: int = 1) -> None:
        slot = now - now % SLOT
        if not self._slots or self._slots[-1][0] != slot:
            self.expire(now)
            self._slots.append((slot, Counter()))
        self._slots[-1][1][key] += n
        for total in self.sums.values():
            total[key] += n

    def expire(self, now: float) -> None:
        for name, span in WINDOWS.items():
            edge = self._edge[name]
            gone = edge
            while edge < len(self._slots) and self._slots[edge][0] <= now - span:
                self.sums[name].subtract(self._slots[edge][1])
                edge += 1
            self._edge[name] = edge
            if edge > gone:  # drop the keys that fell to zero, only when something left
                total = self.sums[name]
                for key in [k for k, v in total.items() if v <= 0]:
                    del total[key]
        while self._edge["1h"] > 0:
            self._slots.popleft()
            self._edge = {name: e - 1 for name, e in self._edge.items()}

    def between(self, start: float, end: float) -> Counter[tuple[str, ...]]:
        """Counts of the slots that start in [start, end)."""
        out: Counter[tuple[str, ...]] = Counter()
        for slot, counts in self._slots:
            if start <= slot < end:
                out.update(counts)
        return out


class PolicyTotals:
    """What one policy has done, counted in memory; some of it persisted."""

    def __init__(self) -> None:
        self.meter = Meter()
        self.run_bytes = 0  # since this engine started
        self.run_objects = 0
        self.sent_bytes_total = 0  # persisted
        self.peak_bytes = 0.0  # persisted
        self.peak_objects = 0.0  # persisted
        self.errors_since_start: Counter[str] = Counter()
        self.errors_total: Counter[str] = Counter()  # persisted
        self.last_error = ("", 0.0)
        # size class -> [count per LATENCY_BUCKETS bound..., +Inf count, sum]: persisted
        self.histogram: dict[str, list[float]] = {}


class Telemetry:
    """Counts what the copy path does; reads stay in memory, writes batch every 10 s."""

    def __init__(self, store: TelemetryStore, started_at: float | None = None) -> None:
        self._store = store
        self.started_at = started_at or time.time()
        self.policies: dict[str, PolicyTotals] = {}
        self.latency = Window()  # keys: (policy, size class, bin)
        self.errors = Window()  # keys: (policy, code)
        self.link_downtime: dict[str, float] = {}  # persisted totals from earlier runs
        self._unsaved_errors: Counter[tuple[str, str, str]] = Counter()
        self._last_reason: dict[tuple[str, str, str], tuple[str, float]] = {}

    def forget(self, policy: str) -> None:
        """A removed policy: its numbers go (the queue's drop_policy removes the stored ones)."""
        self.policies.pop(policy, None)
        for key in [k for k in self._last_reason if k[0] == policy]:
            del self._last_reason[key]
        for key in [k for k in self._unsaved_errors if k[0] == policy]:
            del self._unsaved_errors[key]

    def of(self, policy: str) -> PolicyTotals:
        if policy not in self.policies:
            self.policies[policy] = PolicyTotals()
        return self.policies[policy]

    # -- the copy path's calls: O(1), no I/O -------------------------------------------

    def streamed(self, policy: str, nbytes: int) -> None:
        totals = self.of(policy)
        totals.meter.add(nbytes=nbytes)
        totals.run_bytes += nbytes
        totals.sent_bytes_total += nbytes

    def completed(self, done: Completion, policy_created_at: float, now: float) -> None:
        if done.outcome is not Outcome.REPLICATED:
            return
        totals = self.of(done.task.policy)
        totals.meter.add(objects=1, now=now)
        totals.run_objects += 1
        if done.task.op not in (Op.PUT, Op.DELETE_MARKER) or not done.task.src_mtime:
            return
        seconds = max(0.0, now - max(done.task.src_mtime, policy_created_at))
        cls = size_class(done.task.size)
        self.latency.add((done.task.policy, cls, str(_bin(seconds))), now)
        row = totals.histogram.setdefault(cls, [0.0] * (len(LATENCY_BUCKETS) + 2))
        for i, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                row[i] += 1
        row[-2] += 1
        row[-1] += seconds

    def failed(self, policy: str, error: MirrorlineError, now: float) -> None:
        code = reason_code(error)
        totals = self.of(policy)
        self.errors.add((policy, code), now)
        totals.errors_since_start[code] += 1
        totals.errors_total[code] += 1
        totals.last_error = (error.reason, now)
        self._unsaved_errors[(policy, error.kind, code)] += 1
        self._last_reason[(policy, error.kind, code)] = (error.reason, now)

    # -- reading ------------------------------------------------------------------------

    def rate(self, policy: str, now: float) -> Rate:
        totals = self.of(policy)
        current_bytes, current_objects = totals.meter.rate(now)
        totals.peak_bytes = max(totals.peak_bytes, current_bytes)
        totals.peak_objects = max(totals.peak_objects, current_objects)
        uptime = max(1.0, now - self.started_at)
        return Rate(
            current_bytes,
            current_objects,
            totals.run_bytes / uptime,
            totals.run_objects / uptime,
            totals.peak_bytes,
            totals.peak_objects,
        )

    def latencies(self, policy: str, now: float) -> dict[str, dict[str, Latency]]:
        self.latency.expire(now)
        out: dict[str, dict[str, Latency]] = {}
        for window, sums in self.latency.sums.items():
            by_class: dict[str, Counter[int]] = {"all": Counter()}
            for (pid, cls, index), n in sums.items():
                if pid == policy:
                    by_class.setdefault(cls, Counter())[int(index)] += n
                    by_class["all"][int(index)] += n
            out[window] = {cls: percentiles(bins) for cls, bins in by_class.items()}
        return out

    def error_stats(self, policy: str, now: float) -> Errors:
        self.errors.expire(now)
        totals = self.of(policy)
        windows = {
            name: {code: n for (pid, code), n in sums.items() if pid == policy}
            for name, sums in self.errors.sums.items()
        }
        reason, at = totals.last_error
        return Errors(
            windows["1m"],
            windows["1h"],
            dict(totals.errors_since_start),
            dict(totals.errors_total),
            reason,
            at or None,
        )

    def policy_stats(
        self,
        policy: Policy,
        state: str,
        counts: Counts,
        now: float,
        scans: tuple[int, float | None],
    ) -> PolicyStats:
        totals = self.of(policy.id)
        return PolicyStats(
            id=policy.id,
            source=policy.source,
            target=policy.target,
            source_alias=policy.source_alias,
            target_alias=policy.target_alias,
            state=state,
            priority=policy.priority,
            paused=policy.paused,
            backlog=backlog(counts, now),
            rate=self.rate(policy.id, now),
            errors=self.error_stats(policy.id, now),
            latency=self.latencies(policy.id, now),
            latency_histogram={cls: list(row) for cls, row in totals.histogram.items()},
            sent_bytes_total=totals.sent_bytes_total,
            bandwidth_limit=policy.bandwidth,
            scans=scans[0],
            last_scan_at=scans[1],
        )

    # -- persistence --------------------------------------------------------------------

    async def load(self) -> None:
        """Totals, peaks, histograms and link downtime from earlier runs."""
        stored = await self._store.load()
        for scope, name, value in stored.stats:
            kind, _, key = scope.partition(":")
            if kind == "policy":
                totals = self.of(key)
                if name in ("sent_bytes_total", "peak_bytes", "peak_objects"):
                    setattr(totals, name, type(getattr(totals, name))(value))
            elif kind == "latency":
                pid, _, cls = key.partition(":")
                row = self.of(pid).histogram.setdefault(cls, [0.0] * (len(LATENCY_BUCKETS) + 2))
                row[int(name)] = value
            elif kind == "link" and name == "downtime_total":
                self.link_downtime[key] = value
        for pid, _, code, count, reason, at in stored.errors:
            totals = self.of(pid)
            totals.errors_total[code] += count
            if at > totals.last_error[1]:
                totals.last_error = (reason, at)

    async def save(
        self, points: Sequence[HistoryPoint], links: dict[str, float], now: float
    ) -> None:
        """One transaction: history rows, totals, error counts; history older than 24 h goes."""
        stats: list[tuple[str, str, float]] = []
        for pid, t in self.policies.items():
            scope = f"policy:{pid}"
            stats += [
                (scope, "sent_bytes_total", t.sent_bytes_total),
                (scope, "peak_bytes", t.peak_bytes),
                (scope, "peak_objects", t.peak_objects),
            ]
            for cls, row in t.histogram.items():
                stats += [(f"latency:{pid}:{cls}", str(i), v) for i, v in enumerate(row)]
        stats += [(f"link:{alias}", "downtime_total", total) for alias, total in links.items()]
        errors, self._unsaved_errors = self._unsaved_errors, Counter()
        try:
            await self._store.save(
                [(p.policy, p.at, json.dumps(_body(p))) for p in points],
                stats,
                [(*key, n, *self._last_reason[key]) for key, n in errors.items()],
                now - HISTORY_KEEP,
            )
        except BaseException:
            self._unsaved_errors.update(errors)  # not written: count them next time
            raise

    def points(self, stats: Iterable[PolicyStats], now: float) -> list[HistoryPoint]:
        at = now - now % SLOT
        recent = self.errors.between(at - SLOT, at)  # the 10 s slot that just ended
        out = []
        for p in stats:
            minute = p.latency.get("1m", {}).get("all", Latency())
            out.append(
                HistoryPoint(
                    policy=p.id,
                    at=at,
                    pending=p.backlog.pending,
                    pending_bytes=p.backlog.pending_bytes,
                    in_flight=p.backlog.in_flight,
                    retrying=p.backlog.retrying,
                    failed=p.backlog.failed,
                    replicated=p.backlog.replicated,
                    replicated_bytes=p.backlog.replicated_bytes,
                    bytes_rate=p.rate.current_bytes,
                    objects_rate=p.rate.current_objects,
                    lag=p.backlog.oldest_pending_age,
                    latency_p50=minute.p50,
                    latency_p99=minute.p99,
                    errors=sum(n for (pid, _), n in recent.items() if pid == p.id),
                )
            )
        return out


def _body(point: HistoryPoint) -> dict[str, object]:
    body = asdict(point)
    del body["policy"], body["at"]
    return body


def backlog(counts: Counts, now: float) -> Backlog:
    """The queue's counters as the snapshot shows them: the same fields, an age for a time."""
    shared = {f.name: getattr(counts, f.name) for f in fields(Backlog) if hasattr(counts, f.name)}
    age = max(0.0, now - counts.oldest_pending_at) if counts.oldest_pending_at else 0.0
    return Backlog(**shared, oldest_pending_age=age)


async def history(
    store: TelemetryStore, since: float, policy: str | None = None, limit: int = 100_000
) -> list[HistoryPoint]:
    """Points since `since`, oldest first; past `limit` the newest are kept, not the oldest."""
    rows = await store.history(since, policy, limit)
    return [HistoryPoint(policy=p, at=at, **json.loads(body)) for p, at, body in reversed(rows)]


def with_backlog(stats: PolicyStats, counts: Counts, now: float) -> PolicyStats:
    return replace(stats, backlog=backlog(counts, now))
