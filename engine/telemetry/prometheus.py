"""Prometheus exposition of the snapshot, named after MinIO's replication metrics.

A custom collector reads the same `Snapshot` as every other view at scrape
time, so /metrics can never disagree with /v1/status. Counters and the
latency histogram are persisted by telemetry, so they do not reset when the
engine restarts (Prometheus' rate() handles resets, a dashboard of totals
does not).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from engine.telemetry.snapshot import PolicyStats, Snapshot
from engine.telemetry.stats import LATENCY_BUCKETS

PREFIX = "mirrorline_replication_"
LABELS = ["policy", "bucket", "target"]
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class SnapshotCollector(Collector):
    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        gauges = {
            "pending_objects": ("Tasks waiting for a worker.", lambda p: p.backlog.pending),
            "pending_bytes": ("Bytes of the pending tasks.", lambda p: p.backlog.pending_bytes),
            "inflight_objects": ("Transfers running now.", lambda p: p.backlog.in_flight),
            "inflight_bytes": ("Bytes of running transfers.", lambda p: p.backlog.in_flight_bytes),
            "retrying_objects": ("Tasks in backoff after an error.", lambda p: p.backlog.retrying),
            "failed_objects": ("Tasks parked as failed.", lambda p: p.backlog.failed),
            "failed_bytes": ("Bytes of failed tasks.", lambda p: p.backlog.failed_bytes),
            "oldest_pending_age_seconds": (
                "Age of the oldest pending task.",
                lambda p: p.backlog.oldest_pending_age,
            ),
            "current_send_bytes": (
                "Bytes/s sent over the last 10 s.",
                lambda p: p.rate.current_bytes,
            ),
            "bandwidth_limit_bytes": (
                "Configured limit in bytes/s (0: none).",
                lambda p: p.bandwidth_limit,
            ),
            "paused": ("1 while the policy is paused.", lambda p: int(p.state == "paused")),
        }
        counters = {
            "replicated_objects": (
                "Versions written to the target.",
                lambda p: p.backlog.replicated,
            ),
            "replicated_bytes": (
                "Bytes of replicated versions.",
                lambda p: p.backlog.replicated_bytes,
            ),
            "sent_bytes": ("Bytes streamed to the target.", lambda p: p.sent_bytes_total),
        }
        for name, (doc, value) in gauges.items():
            family = GaugeMetricFamily(PREFIX + name, doc, labels=LABELS)
            for p in snap.policies:
                family.add_metric(_labels(p), value(p))
            yield family
        for name, (doc, value) in counters.items():
            family = CounterMetricFamily(PREFIX + name, doc, labels=LABELS)
            for p in snap.policies:
                family.add_metric(_labels(p), value(p))
            yield family
        errors = CounterMetricFamily(
            PREFIX + "errors", "Transfer errors by reason.", labels=[*LABELS, "reason"]
        )
        for p in snap.policies:
            for reason, n in sorted(p.errors.total.items()):
                errors.add_metric([*_labels(p), reason], n)
        yield errors
        latency = HistogramMetricFamily(
            PREFIX + "latency_seconds",
            "Source last-modified to committed on the target.",
            labels=[*LABELS, "size"],
        )
        for p in snap.policies:
            for cls, row in sorted(p.latency_histogram.items()):
                buckets = [(_bound(b), row[i]) for i, b in enumerate(LATENCY_BUCKETS)] + [
                    ("+Inf", row[-2])
                ]
                latency.add_metric([*_labels(p), cls], buckets, row[-1])
        yield latency
        online = GaugeMetricFamily(
            PREFIX + "link_online", "1 when the endpoint answers its probe.", labels=["target"]
        )
        downtime = CounterMetricFamily(
            PREFIX + "link_downtime_seconds", "Time spent offline, all runs.", labels=["target"]
        )
        probe = GaugeMetricFamily(
            PREFIX + "link_latency_seconds", "Last health probe round trip.", labels=["target"]
        )
        for link in snap.links:
            if link.online is not None:
                online.add_metric([link.alias], int(link.online))
            downtime.add_metric([link.alias], link.downtime_total)
            if link.latency_ms is not None:
                probe.add_metric([link.alias], link.latency_ms / 1000)
        yield from (online, downtime, probe)
        up = GaugeMetricFamily("mirrorline_engine_running", "1 while the engine runs.")
        up.add_metric([], int(snap.engine.running))
        yield up


def _labels(p: PolicyStats) -> list[str]:
    return [p.id, p.source, p.target]


def _bound(value: float) -> str:
    return f"{value:g}"


def render(snapshot: Callable[[], Snapshot]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))
    return generate_latest(registry)
