"""The answer to "why is this object not on the target?": plain values, no I/O.

`engine.checks.explain` gathers them (both stores, the queue, the snapshot);
the CLI, the HTTP API and the console only carry and show them. `lines()` is
the one human text (`replicate explain` prints it, the console shows it and
copies it), `to_dict()` the one JSON form (`--json`, `GET /v1/explain`), which
`from_dict()` reads back, so a remote engine's answer is the same value.

The verdict words are a contract for scripts and monitoring: see VERDICTS.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from engine.model import Attempt, Task
from engine.printable import printable
from engine.telemetry.snapshot import build

IN_SYNC = "in sync"
PENDING = "pending"
FAILED = "failed"
WAITING = "waiting"  # a link of the policy is offline: dispatch waits for it
MISSING = "missing"  # the source has it, the target lacks it, nothing is queued
NOT_COVERED = "not covered"
SOURCE_LACKS = "source lacks key"
# Worst first: with several policies covering a key, the worst verdict is the answer.
VERDICTS = (FAILED, WAITING, PENDING, MISSING, IN_SYNC, NOT_COVERED, SOURCE_LACKS)


@dataclass(frozen=True, slots=True)
class VersionRow:
    """One version or delete marker of the key, as a listing showed it."""

    version_id: str
    mtime: float
    size: int
    etag: str
    latest: bool
    delete_marker: bool


@dataclass(frozen=True, slots=True)
class Coverage:
    """One policy of the source bucket: does it cover the key, and what it says of it."""

    policy: str
    target: str  # ALIAS/BUCKET
    covers: bool
    why: str  # covers: ""; else what excludes the key (prefix, tags, disabled)
    verdict: str = ""  # this policy's verdict ("" when it does not cover the key)
    reason: str = ""
    hold: str = ""  # why its dispatch is held, from the snapshot ("" when flowing)


@dataclass(frozen=True, slots=True)
class TargetSide:
    """What one covering policy's target holds for the key."""

    policy: str
    target: str
    versions: list[VersionRow] = field(default_factory=list)
    error: str = ""  # the listing failed (the target offline, its bucket gone)


@dataclass(frozen=True, slots=True)
class ReplicaRow:
    """A replica map entry: this source version became that target version."""

    policy: str
    source_version: str
    target_version: str | None  # None: deliberately nothing (superseded, filtered)


@dataclass(frozen=True, slots=True)
class TaskRow:
    """A task queued or parked for the key, with where it stands."""

    id: int
    policy: str
    state: str
    op: str
    version_id: str
    size: int
    created_at: float
    attempts: int
    next_at: float
    last_error: str
    error_class: str
    error_code: str
    ahead: int | None = None  # pending: tasks of its policy claimed before it
    drain_rate: float = 0.0  # its policy's current rate, objects/s
    history: list[Attempt] = field(default_factory=list)  # failed attempts, oldest first

    @classmethod
    def of(
        cls, task: Task, ahead: int | None, drain_rate: float, history: list[Attempt]
    ) -> TaskRow:
        return cls(
            task.id, task.policy, task.state.value, task.op.value, task.version_id, task.size,
            task.created_at, task.attempts, task.next_at, task.last_error, task.error_class,
            task.error_code, ahead, drain_rate, history,
        )  # fmt: skip

    @property
    def eta(self) -> float | None:
        """Seconds until it is claimed at the current drain rate (None: not draining)."""
        if self.ahead is None or self.drain_rate <= 0:
            return None
        return self.ahead / self.drain_rate


@dataclass(frozen=True, slots=True)
class LinkRow:
    alias: str
    role: str  # source | target
    online: bool | None  # None: not probed (no engine running)
    since: float | None
    last_error: str = ""


@dataclass(frozen=True, slots=True)
class Explanation:
    source: str  # ALIAS/BUCKET
    key: str
    at: float  # when it was gathered: ages are counted from here
    verdict: str
    reason: str
    policies: list[Coverage] = field(default_factory=list)
    source_versions: list[VersionRow] = field(default_factory=list)
    source_error: str = ""
    target_versions: list[TargetSide] = field(default_factory=list)
    replicas: list[ReplicaRow] = field(default_factory=list)
    tasks: list[TaskRow] = field(default_factory=list)
    links: list[LinkRow] = field(default_factory=list)

    @property
    def in_sync(self) -> bool:
        return self.verdict == IN_SYNC

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for row, task in zip(out["tasks"], self.tasks, strict=True):
            row["eta"] = task.eta
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Explanation:
        return build(cls, data)

    def lines(self) -> list[str]:
        """The human text: the verdict line first, then the evidence, section by section."""
        out = [
            f"{printable(self.source)}/{printable(self.key)}: {_said(self.verdict, self.reason)}"
        ]
        out += _section("policies", [_coverage(c) for c in self.policies])
        source = [_version(v, self.at) for v in self.source_versions]
        if self.source_error:
            source.append(f"cannot list: {printable(self.source_error)}")
        out += _section(f"source {printable(self.source)}", source or ["no versions"])
        for side in self.target_versions:
            rows = [_version(v, self.at) for v in side.versions]
            if side.error:
                rows.append(f"cannot list: {printable(side.error)}")
            out += _section(
                f"target {printable(side.target)} ({side.policy})", rows or ["no versions"]
            )
        out += _section("replica map", [_replica(r) for r in self.replicas])
        out += _section("tasks", [line for t in self.tasks for line in task_lines(t, self.at)])
        out += _section("links", [_link(link, self.at) for link in self.links])
        return out


def _section(title: str, rows: list[str]) -> list[str]:
    return [f"{title}:", *(f"  {r}" for r in rows)] if rows else []


def ago(seconds: float) -> str:
    """A duration as an operator reads it: 12 s, 4m10s, 2h05m, 3d04h."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def clock(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def _coverage(c: Coverage) -> str:
    if not c.covers:
        return f"{c.policy} -> {printable(c.target)}: not covered: {printable(c.why)}"
    text = f"{c.policy} -> {printable(c.target)}: {_said(c.verdict, c.reason)}"
    if c.hold and c.hold not in c.reason:
        text += f" [{printable(c.hold)}]"
    return text


def _said(verdict: str, reason: str) -> str:
    """The verdict, then its reason; once only when the reason starts with it (so a
    pending key reads "pending for 12 s, 340 ahead", the verdict word still first)."""
    if not reason:
        return verdict
    if reason.startswith(verdict + " "):
        return printable(reason)
    return f"{verdict}: {printable(reason)}"


def _version(v: VersionRow, now: float) -> str:
    what = "delete marker" if v.delete_marker else f"{v.size} B etag {printable(v.etag)}"
    latest = " (latest)" if v.latest else ""
    return f"{printable(v.version_id)}{latest} {clock(v.mtime)} ({ago(now - v.mtime)} ago) {what}"


def _replica(r: ReplicaRow) -> str:
    target = "nothing (deliberately)" if r.target_version is None else printable(r.target_version)
    return f"{r.policy}: {printable(r.source_version)} -> {target}"


def task_lines(t: TaskRow, now: float) -> list[str]:
    """One task as the `tasks:` section tells it: its head line, its last error, its last
    attempts (also what the console shows when a store cannot be asked)."""
    head = (
        f"#{t.id} {t.policy} {t.op} {printable(t.version_id)}: {t.state} for "
        f"{ago(now - t.created_at)}, {t.attempts} attempt(s)"
    )
    if t.ahead is not None:
        head += f", {t.ahead} ahead"
        eta = t.eta
        head += f", about {ago(eta)} to go" if eta is not None else ", not draining"
    if t.state == "retrying" and t.next_at:
        head += f", next try in {ago(t.next_at - now)}"
    rows = [head]
    if t.last_error:
        cause = "/".join(p for p in (t.error_class, t.error_code) if p)
        rows.append(f"  last error ({cause}): {printable(t.last_error)}")
    rows += [
        f"  attempt {a.n} {clock(a.at)} {a.kind}: {printable(a.error)}" for a in t.history[-5:]
    ]
    return rows


def _link(link: LinkRow, now: float) -> str:
    if link.online is None:
        return f"{link.role} {link.alias}: unknown (no engine running)"
    if link.online:
        return f"{link.role} {link.alias}: online"
    since = f" since {clock(link.since)} ({ago(now - link.since)})" if link.since else ""
    error = f": {printable(link.last_error)}" if link.last_error else ""
    return f"{link.role} {link.alias}: offline{since}{error}"
