"""The small durable stores beside the queue: policies, resyncs, telemetry, audit.

Each is an interface with one method per question the engine or the service asks;
`engine.state.sqlite` implements them all on one database, and a PostgreSQL backend
implements the same methods. Nothing above `engine.state` names a backend.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.errors import UserError
from engine.model import NewTask
from engine.policy import Policy
from engine.state.queue import TaskQueue


class PolicyStore(abc.ABC):
    """Policies and the engine-wide pause flag."""

    @abc.abstractmethod
    async def all(self) -> list[Policy]:
        """Every policy, highest priority first."""

    @abc.abstractmethod
    async def get(self, policy_id: str) -> Policy:
        """One policy; a UserError naming the id if there is none."""

    @abc.abstractmethod
    async def next_priority(self) -> int: ...

    @abc.abstractmethod
    async def add(self, policy: Policy) -> Policy:
        """Store a new policy (checked with `check_new`), stamping its creation time."""

    @abc.abstractmethod
    async def update(self, policy: Policy) -> Policy: ...

    @abc.abstractmethod
    async def remove(self, policy_id: str) -> None: ...

    @abc.abstractmethod
    async def set_paused(self, paused: bool, policy_id: str | None = None) -> int:
        """Pause one policy, or (None) the whole engine; returns how many changed."""

    @abc.abstractmethod
    async def engine_paused(self) -> bool: ...

    def check_unique(self, policy: Policy, others: Iterable[Policy]) -> None:
        """Two policies may not share a priority, nor the same route and prefix."""
        for other in others:
            if other.id == policy.id:
                continue
            if other.priority == policy.priority:
                raise UserError(f"priority {policy.priority} is already used by policy {other.id}")
            same_route = (other.source, other.target) == (policy.source, policy.target)
            if same_route and other.prefix == policy.prefix:
                raise UserError(
                    f"policy {other.id} already replicates {policy.source} to {policy.target}"
                )

    async def check_new(self, policy: Policy) -> None:
        existing = await self.all()
        if any(p.id == policy.id for p in existing):
            raise UserError(f"a policy with id {policy.id!r} already exists")
        self.check_unique(policy, existing)


RUNNING, DONE, FAILED = "running", "done", "failed"
FRESH = 10.0  # a walk not heard from for this long shows no rate or ETA (engine gone?)


@dataclass(frozen=True)
class Resync:
    """One resync, as its row says; `failed` and `pending` are counted live from the tasks."""

    id: int
    policy: str
    state: str
    page_size: int
    started_at: float
    updated_at: float
    walked_at: float | None  # the walk reached the end; its copies may still be queued
    finished_at: float | None
    cursor: str  # the last key fully handled: a restart resumes after it
    current_key: str
    total: int | None  # the source's versions, once counted
    scanned: int
    enqueued: int
    replicated: int
    skipped: int
    rate: float  # versions scanned per second, at the last checkpoint
    last_error: str
    failed: int = 0
    pending: int = 0

    def public(self, now: float) -> dict[str, Any]:
        """The row, plus rate and ETA of the walk only while they are honest (else None)."""
        walking = self.state == RUNNING and self.walked_at is None
        rate = self.rate if walking and now - self.updated_at < FRESH else None
        counted = self.total is not None and self.scanned <= self.total
        return asdict(self) | {
            "phase": ("walking" if walking else "copying") if self.state == RUNNING else self.state,
            "rate": rate,
            "eta_seconds": (self.total - self.scanned) / rate if rate and counted else None,
        }


class ResyncStopped(Exception):
    """A checkpoint found its resync no longer running (cancelled): the page rolls back."""


class ResyncStore(abc.ABC):
    """Resyncs; every change is one transaction."""

    @abc.abstractmethod
    async def start(self, policies: Sequence[str], page_size: int) -> list[Resync]:
        """New resyncs for these policies, all or none (one is already running: an error)."""

    @abc.abstractmethod
    async def cancel(self, policies: Sequence[str]) -> list[int]: ...

    @abc.abstractmethod
    async def get(self, rid: int) -> Resync: ...

    @abc.abstractmethod
    async def latest(self, policy: str) -> Resync | None: ...

    @abc.abstractmethod
    async def running(self) -> list[Resync]:
        """Running resyncs; those whose policy was removed end as failed."""

    @abc.abstractmethod
    async def note(self, rid: int, only_if_walking: bool = False, **values: object) -> bool:
        """Set fields of a running resync (never revives a cancelled one); with
        `only_if_walking`, only while its walk has not reached the end."""

    @abc.abstractmethod
    async def checkpoint(
        self, r: Resync, tasks: Sequence[NewTask], cursor: str, versions: int, rate: float
    ) -> Resync:
        """Queue a page's tasks and move the cursor past it, in one transaction
        (ResyncStopped if the resync was cancelled meanwhile: nothing is queued)."""


@dataclass(frozen=True)
class StoredTotals:
    """Telemetry that outlives a run, as raw rows the telemetry model reads back."""

    stats: list[tuple[str, str, float]]  # (scope, name, value)
    errors: list[tuple[str, str, str, int, str, float]]  # policy, kind, code, n, reason, at


class TelemetryStore(abc.ABC):
    """Totals, error counts and history that outlive a run, and the published snapshot."""

    @abc.abstractmethod
    async def load(self) -> StoredTotals: ...

    @abc.abstractmethod
    async def save(
        self,
        history: Sequence[tuple[str, float, str]],  # (policy, at, JSON body)
        stats: Sequence[tuple[str, str, float]],
        errors: Sequence[tuple[str, str, str, int, str, float]],
        forget_before: float,
    ) -> None:
        """One transaction: history rows, totals, error counts added; old history goes."""

    @abc.abstractmethod
    async def history(
        self, since: float, policy: str | None, limit: int
    ) -> list[tuple[str, float, str]]:
        """(policy, at, JSON body) since `since`, newest first, at most `limit`."""

    @abc.abstractmethod
    async def publish(self, snapshot_json: str) -> None:
        """The engine's latest snapshot, for readers in other processes."""

    @abc.abstractmethod
    async def published(self) -> str | None: ...


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: float
    actor: str
    action: str
    detail: str


class AuditLog(abc.ABC):
    """Who did what: every change an operator makes, from any front end."""

    @abc.abstractmethod
    async def record(self, actor: str, action: str, detail: str) -> None: ...

    @abc.abstractmethod
    async def recent(self, limit: int = 100) -> list[AuditEntry]:
        """Newest first."""


@dataclass(frozen=True)
class Node:
    """One engine process sharing the state, as its last heartbeat said."""

    id: str
    host: str
    pid: int
    started_at: float
    heartbeat_at: float
    state: str  # up, gone (not heard from within its lease), stopped (left cleanly)
    workers: int
    rate: float  # bytes per second copied, at its last heartbeat
    in_flight: int
    replicated: int  # objects this process copied since it started
    replicated_bytes: int


class NodeStore(abc.ABC):
    """The engine processes sharing one state: a cluster's member list."""

    @abc.abstractmethod
    async def report(
        self, workers: int, rate: float, in_flight: int, replicated: int, replicated_bytes: int
    ) -> None:
        """This process's figures, for the others to read (with its next heartbeat)."""

    @abc.abstractmethod
    async def all(self) -> list[Node]:
        """Every node recently seen, this one included; empty where state is not shared."""


class SoloNodes(NodeStore):
    """A state only one engine opens (SQLite): there is no cluster to list."""

    async def report(
        self, workers: int, rate: float, in_flight: int, replicated: int, replicated_bytes: int
    ) -> None:
        return None

    async def all(self) -> list[Node]:
        return []


class LeaseStore(abc.ABC):
    """Work one engine does for everyone on a shared state (a policy's scan)."""

    @abc.abstractmethod
    async def hold(self, name: str) -> bool:
        """Take or renew the lease `name` for this process; False while another holds it."""

    @abc.abstractmethod
    async def drop(self, name: str) -> None:
        """Give the lease up (this process stops doing that work)."""


class SoloLeases(LeaseStore):
    """Only one engine opens this state: every lease is its own."""

    async def hold(self, name: str) -> bool:
        return True

    async def drop(self, name: str) -> None:
        return None


@dataclass
class State:
    """One backend's stores, opened together and closed together."""

    where: str  # the address it was opened from, for messages (never a secret)
    queue: TaskQueue
    policies: PolicyStore
    resyncs: ResyncStore
    telemetry: TelemetryStore
    audit: AuditLog
    _close: Callable[[], Awaitable[None]]
    nodes: NodeStore = field(default_factory=SoloNodes)
    leases: LeaseStore = field(default_factory=SoloLeases)

    _closed: bool = False

    async def close(self) -> None:
        """Idempotent: a console that quits and then unwinds closes it twice."""
        if not self._closed:
            self._closed = True
            await self._close()
