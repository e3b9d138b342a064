"""Plain values shared by the engine's parts. No I/O here."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Op(enum.StrEnum):
    """What a task does to the target."""

    PUT = "put"  # copy one source version (new object, overwrite, new version)
    DELETE_MARKER = "delete-marker"  # the source got a delete marker: make one on the target
    DELETE_VERSION = "delete-version"  # a source version was removed for good: remove its replica
    METADATA = "metadata"  # tags of a replicated version changed


class TaskState(enum.StrEnum):
    """Where a task is in its life; stored as TEXT so rows read well in sqlite3."""

    PENDING = "pending"  # waiting for a worker
    IN_FLIGHT = "in-flight"  # leased by a worker
    RETRYING = "retrying"  # failed transiently, waiting for its backoff to pass
    FAILED = "failed"  # permanent error or retries exhausted: waits for an operator


ACTIVE_STATES = (TaskState.PENDING, TaskState.IN_FLIGHT, TaskState.RETRYING)

# The newest version of a key the target holds: (source mtime, seq, source version id).
Newest = tuple[float, int, str]


@dataclass(frozen=True, slots=True)
class NewTask:
    """A change the scanner or an event found; the queue deduplicates on its identity."""

    policy: str
    key: str
    version_id: str
    op: Op
    size: int = 0
    etag: str = ""
    src_mtime: float = 0.0
    seq: int = 0  # position among the key's versions, oldest first: orders same-second writes
    target_version: str = ""  # DELETE_VERSION / METADATA: the replica to act on
    target_has_key: bool = False  # the target listing shows this key: check before copying

    @property
    def identity(self) -> tuple[str, str, str, str]:
        return (self.policy, self.key, self.version_id, self.op.value)


@dataclass(frozen=True, slots=True)
class Task(NewTask):
    """A task as stored in the queue."""

    id: int = 0
    state: TaskState = TaskState.PENDING
    attempts: int = 0
    next_at: float = 0.0
    last_error: str = ""
    error_class: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0
    error_code: str = ""  # the last error's reason code (NoSuchBucket, Connection, HTTP503...)

    @property
    def cause(self) -> Cause:
        return Cause(self.policy, self.op, self.error_class, self.error_code)


@dataclass(frozen=True, slots=True)
class Cause:
    """Why tasks are parked: 10,000 failures of one cause are one line to an operator."""

    policy: str
    op: Op
    error_class: str  # retryable, permanent, not-found, ...
    code: str  # reason code, as the telemetry counts errors by reason


@dataclass(frozen=True, slots=True)
class FailureGroup:
    """The failed and retrying tasks of one cause, summed."""

    cause: Cause
    count: int
    bytes: int
    first_seen: float
    last_seen: float
    example_key: str
    example_error: str
    failed: int = 0  # of `count`, parked for good (the rest are retrying)


class Outcome(enum.StrEnum):
    """How a finished task ended."""

    REPLICATED = "replicated"  # bytes or a marker were written to the target
    ALREADY = "already"  # the target already held this version (idempotence)
    SKIPPED = "skipped"  # nothing to do: source gone, superseded, filtered, or a replica


@dataclass(frozen=True, slots=True)
class Completion:
    """A task that finished, with what the target now holds for it."""

    task: Task
    outcome: Outcome
    bytes: int = 0
    target_version: str | None = None  # None: leave the replica map alone
    note: str = ""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One failed try of a task: when, and why."""

    n: int
    at: float
    kind: str  # the error's class: retryable, permanent, ...
    error: str


@dataclass(frozen=True, slots=True)
class Counts:
    """Backlog numbers for one policy; read from counters, not by counting the backlog."""

    pending: int = 0
    pending_bytes: int = 0
    in_flight: int = 0
    in_flight_bytes: int = 0
    retrying: int = 0
    retrying_bytes: int = 0
    failed: int = 0
    failed_bytes: int = 0
    replicated: int = 0
    replicated_bytes: int = 0
    skipped: int = 0
    oldest_pending_at: float | None = None
