"""Snapshots: the running engine's (live), and the state database's (for other processes).

The engine builds one every second from the queue counters and its telemetry
and publishes it in the database every 2 s. A `replicate status` in another
process reads that one with the backlog re-read exactly from the counters;
with no engine running it builds the same shape from what was persisted, with
links unknown. Either way every view formats the same `Snapshot`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

from engine import __version__
from engine.model import Counts
from engine.policy import Policy
from engine.state.stores import Node, TelemetryStore
from engine.telemetry.snapshot import (
    Backlog,
    Cluster,
    EngineInfo,
    Link,
    NodeRow,
    PolicyStats,
    Rate,
    Snapshot,
    TargetStats,
    Transfer,
)
from engine.telemetry.stats import Telemetry

V = TypeVar("V", Backlog, Rate)
FRESH = 10.0  # a published snapshot older than this means the engine is gone


def state_of(policy: Policy, engine_paused: bool) -> str:
    if not policy.enabled:
        return "disabled"
    if policy.paused or engine_paused:
        return "paused"
    return "enabled"


def hold(state: str, held: str) -> str:
    """PolicyStats.hold: paused whenever the state says so (engine running or not), else
    what the running engine's dispatcher reports; a disabled policy is not held, it is off."""
    return "paused" if state == "paused" else "" if state == "disabled" else held


@dataclass
class Live:
    """What only a running engine knows, beyond its telemetry."""

    started_at: float
    workers: int
    running: bool = True
    links: list[Link] = field(default_factory=list)
    transfers: list[Transfer] = field(default_factory=list)
    scans: dict[str, tuple[int, float | None]] = field(default_factory=dict)
    scan_errors: dict[str, str] = field(default_factory=dict)
    holds: dict[str, str] = field(default_factory=dict)  # why dispatch is held, per policy
    next_scans: dict[str, float | None] = field(default_factory=dict)
    cluster: Cluster | None = None  # the engines on a shared queue, this one among them
    config_error: str = ""


def compose(
    telemetry: Telemetry,
    policies: Sequence[Policy],
    counts: dict[str, Counts],
    paused: bool,
    live: Live | None,
    now: float,
) -> Snapshot:
    stats = []
    for p in policies:
        scans = live.scans.get(p.id, (0, None)) if live else (0, None)
        one = telemetry.policy_stats(p, state_of(p, paused), counts.get(p.id, Counts()), now, scans)
        if live and p.id in live.scan_errors:
            one = replace(one, scan_error=live.scan_errors[p.id])
        if live:
            one = replace(one, next_scan_at=live.next_scans.get(p.id))
        stats.append(replace(one, hold=hold(one.state, live.holds.get(p.id, "") if live else "")))
    links = live.links if live else _stored_links(telemetry, policies)
    return Snapshot(
        engine=EngineInfo(
            running=bool(live and live.running),
            paused=paused,
            started_at=live.started_at if live else None,
            updated_at=now,
            workers=live.workers if live else 0,
            version=__version__,
            config_error=live.config_error if live else "",
        ),
        policies=stats,
        targets=targets(stats, links),
        links=links,
        transfers=live.transfers if live else [],
        cluster=live.cluster if live else None,
    )


def cluster_of(nodes: Sequence[Node]) -> Cluster | None:
    """The member list and its totals (None where the state is not shared)."""
    if not nodes:
        return None
    rows = [NodeRow(**dataclasses.asdict(n)) for n in nodes]
    up = [r for r in rows if r.state == "up"]
    return Cluster(
        nodes=rows,
        up=len(up),
        workers=sum(r.workers for r in up),
        rate=sum(r.rate for r in up),
        in_flight=sum(r.in_flight for r in up),
    )


def _stored_links(telemetry: Telemetry, policies: Iterable[Policy]) -> list[Link]:
    aliases = sorted({a for p in policies for a in (p.source_alias, p.target_alias)})
    return [
        Link(a, None, None, downtime_total=telemetry.link_downtime.get(a, 0.0)) for a in aliases
    ]


def targets(stats: Sequence[PolicyStats], links: Sequence[Link]) -> list[TargetStats]:
    online = {link.alias: link.online for link in links}
    out = []
    for alias in sorted({p.target_alias for p in stats}):
        mine = [p for p in stats if p.target_alias == alias]
        out.append(
            TargetStats(
                alias=alias,
                policies=[p.id for p in mine],
                backlog=_sum(Backlog, [p.backlog for p in mine]),
                rate=_sum(Rate, [p.rate for p in mine]),
                online=online.get(alias),
            )
        )
    return out


def _sum(kind: type[V], values: Sequence[V]) -> V:
    fields = kind.__dataclass_fields__
    total = {name: sum(getattr(v, name) for v in values) for name in fields}
    if kind is Backlog:  # the oldest pending task of the target is the oldest of any policy
        total["oldest_pending_age"] = max((v.oldest_pending_age for v in values), default=0.0)
    else:  # peaks happened at different times: the best single one is what is known
        for name in ("peak_bytes", "peak_objects"):
            total[name] = max((getattr(v, name) for v in values), default=0.0)
    return kind(**total)


async def publish(store: TelemetryStore, snapshot: Snapshot) -> None:
    await store.publish(json.dumps(snapshot.to_dict()))
