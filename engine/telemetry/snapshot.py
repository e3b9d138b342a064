"""The telemetry snapshot: plain values every view reads (CLI, HTTP API, Prometheus, console).

One shape, built in one place (engine/telemetry.py), travels as JSON over the
API and comes back as the same dataclasses (`Snapshot.from_dict`), so a view
never knows whether the engine runs in its process or across the network.
Times are Unix seconds; sizes are bytes; rates are per second.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

# MinIO's object size classes, as upper bounds in bytes (the last one is open).
SIZE_CLASSES: tuple[tuple[str, float], ...] = (
    ("<1KiB", 1024),
    ("<1MiB", 1024**2),
    ("<10MiB", 10 * 1024**2),
    ("<100MiB", 100 * 1024**2),
    ("<1GiB", 1024**3),
    (">=1GiB", float("inf")),
)


def size_class(size: int) -> str:
    return next(name for name, bound in SIZE_CLASSES if size < bound)


@dataclass(frozen=True, slots=True)
class Latency:
    """Replication latency percentiles, in seconds, over `count` objects."""

    count: int = 0
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    # Seconds: the coarsest source timestamp counted from (1.0 for a store whose listings
    # carry whole-second LastModified, 0.001 for event times and millisecond listings).
    resolution: float | None = None


@dataclass(frozen=True, slots=True)
class Rate:
    """Per second. For a target, the peaks are the highest of one policy's (a lower bound)."""

    current_bytes: float = 0.0  # last 10 s
    current_objects: float = 0.0
    average_bytes: float = 0.0  # since the engine started
    average_objects: float = 0.0
    peak_bytes: float = 0.0  # best 10 s ever seen (persisted)
    peak_objects: float = 0.0


@dataclass(frozen=True, slots=True)
class Errors:
    """Error counts by reason code (e.g. AccessDenied, Connection, HTTP503)."""

    last_minute: dict[str, int] = field(default_factory=dict)
    last_hour: dict[str, int] = field(default_factory=dict)
    since_start: dict[str, int] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)  # across restarts
    last_reason: str = ""
    last_at: float | None = None


@dataclass(frozen=True, slots=True)
class Backlog:
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
    oldest_pending_age: float = 0.0  # seconds; 0 when nothing is pending


@dataclass(frozen=True, slots=True)
class PolicyStats:
    id: str
    source: str  # alias/bucket
    target: str
    source_alias: str
    target_alias: str
    state: str  # enabled | paused | disabled
    priority: int
    backlog: Backlog
    rate: Rate
    errors: Errors
    # window ("1m", "1h") -> size class ("all", "<1KiB", ...) -> percentiles
    paused: bool = False  # this policy's own flag (state also says paused for the engine's)
    latency: dict[str, dict[str, Latency]] = field(default_factory=dict)
    # size class -> cumulative counts at each bound of telemetry.LATENCY_BUCKETS, +Inf, sum
    latency_histogram: dict[str, list[float]] = field(default_factory=dict)
    sent_bytes_total: int = 0  # bytes streamed to the target, as they stream (persisted)
    bandwidth_limit: int = 0  # configured, bytes/s (0: none)
    scans: int = 0
    last_scan_at: float | None = None
    scan_error: str = ""
    # Why dispatch is held, in the words STATE shows ("paused", "waiting: dst offline 2m",
    # "throttled", "waiting: older version of KEY in flight", "multipart budget"); "" flowing.
    hold: str = ""
    next_scan_at: float | None = None  # when the next full scan is due (engine running)


@dataclass(frozen=True, slots=True)
class Link:
    alias: str
    online: bool | None  # None: not probed (engine not running)
    since: float | None
    downtime_current: float = 0.0
    downtime_total: float = 0.0  # across restarts
    latency_ms: float | None = None
    last_error: str = ""


@dataclass(frozen=True, slots=True)
class TargetStats:
    """The policies writing to one target endpoint, summed."""

    alias: str
    policies: list[str]
    backlog: Backlog
    rate: Rate
    online: bool | None


@dataclass(frozen=True, slots=True)
class Transfer:
    task_id: int
    policy: str
    key: str
    version_id: str
    op: str
    size: int
    bytes_done: int
    speed: float  # bytes/s since it started
    started_at: float
    attempt: int


@dataclass(frozen=True, slots=True)
class EngineInfo:
    running: bool
    paused: bool
    started_at: float | None
    updated_at: float | None  # when these numbers were taken
    workers: int = 0
    version: str = ""
    # The running engine's configuration problem (a bad aliases.json, an unreadable
    # policy): it keeps the last good configuration meanwhile. "" when there is none.
    config_error: str = ""


@dataclass(frozen=True, slots=True)
class NodeRow:
    """One engine process on a shared queue, as its last heartbeat said."""

    id: str
    host: str
    pid: int
    started_at: float
    heartbeat_at: float
    state: str  # up | gone (silent past its lease: its tasks are taken over) | stopped
    workers: int
    rate: float  # bytes/s it copies
    in_flight: int
    replicated: int  # objects it copied since it started
    replicated_bytes: int


@dataclass(frozen=True, slots=True)
class Cluster:
    """The engines sharing one queue; totals count the nodes that are up."""

    nodes: list[NodeRow]
    up: int = 0
    workers: int = 0
    rate: float = 0.0
    in_flight: int = 0


@dataclass(frozen=True, slots=True)
class Snapshot:
    engine: EngineInfo
    policies: list[PolicyStats]
    targets: list[TargetStats]
    links: list[Link]
    transfers: list[Transfer]
    cluster: Cluster | None = None  # None: a state one engine owns (SQLite)

    def policy(self, policy_id: str) -> PolicyStats | None:
        return next((p for p in self.policies if p.id == policy_id), None)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Snapshot:
        return build(cls, data)


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """One policy's numbers at one instant; a row every 10 s, kept 24 h."""

    policy: str
    at: float
    pending: int = 0
    pending_bytes: int = 0
    in_flight: int = 0
    retrying: int = 0
    failed: int = 0
    replicated: int = 0
    replicated_bytes: int = 0
    bytes_rate: float = 0.0
    objects_rate: float = 0.0
    lag: float = 0.0
    latency_p50: float | None = None
    latency_p99: float | None = None
    errors: int = 0  # in the 10 s before `at`


def build(kind: type[T], data: Any) -> T:
    """Rebuild typed values from JSON: the inverse of dataclasses.asdict for these types."""
    return typing.cast(T, _build(kind, data))


@functools.cache
def _field_types(kind: type) -> dict[str, Any]:
    """Each field's type, resolved once per class: get_type_hints evaluates every string
    annotation on each call, and that was most of a console poll's decoding (5-9 ms for
    a 4.6 KB snapshot, on the console's event loop)."""
    hints = typing.get_type_hints(kind)
    return {f.name: hints[f.name] for f in dataclasses.fields(kind)}


def _build(kind: Any, data: Any) -> Any:
    if data is None:
        return None
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        return _build(options[0], data)
    if origin is list:
        (item,) = typing.get_args(kind)
        return [_build(item, x) for x in data]
    if origin is dict:
        _, value = typing.get_args(kind)
        return {k: _build(value, v) for k, v in data.items()}
    if dataclasses.is_dataclass(kind):
        fields = _field_types(kind)
        return kind(**{k: _build(fields[k], v) for k, v in data.items() if k in fields})
    if kind is float:
        return float(data)
    return data
