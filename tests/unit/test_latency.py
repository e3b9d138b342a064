"""Latency as the telemetry counts it: from when the source accepted the write, with its resolution."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import formatdate
from typing import Any

import pytest

from engine.model import Completion, Op, Outcome, Task
from engine.s3.heads import parse_http_date
from engine.s3.sigv4 import Signer
from engine.telemetry.stats import Telemetry

CREATED = 1_000.0  # the policy's creation: before every write below


def done(src_mtime: float, size: int = 4096) -> Completion:
    task = Task("p1", "k", "v1", Op.PUT, size=size, src_mtime=src_mtime)
    return Completion(task, Outcome.REPLICATED, bytes=size, target_version="t1")


def telemetry() -> Telemetry:
    store: Any = None  # reading and counting never touch the store
    return Telemetry(store, started_at=CREATED)


def test_an_event_time_in_milliseconds_is_counted_from_exactly_then() -> None:
    t = telemetry()
    for i in range(10):
        t.completed(done(2_000.25 + i), CREATED, 2_000.25 + i + 0.3)
    minute = t.latencies("p1", 2_012.0)["1m"]["all"]
    assert minute.count == 10
    assert minute.p50 == pytest.approx(0.3, rel=0.06)  # bins are 10% wide
    assert minute.resolution == 0.001


def test_a_whole_second_last_modified_counts_from_the_middle_of_its_second() -> None:
    # A write at 2000.8 listed as 2000: read 0.3 s later, raw arithmetic says 1.1 s.
    t = telemetry()
    t.completed(done(2_000.0), CREATED, 2_001.1)
    minute = t.latencies("p1", 2_002.0)["1m"]["all"]
    assert minute.p50 == pytest.approx(0.6, rel=0.06), "counted from 2000.5, not 2000.0"
    assert minute.resolution == 1.0, "and it says the figure is only good to a second"


def test_the_coarsest_resolution_of_a_window_is_the_one_it_reports() -> None:
    t = telemetry()
    t.completed(done(2_000.0), CREATED, 2_001.0)
    t.completed(done(2_000.123, size=100 << 20), CREATED, 2_001.0)
    windows = t.latencies("p1", 2_002.0)["1m"]
    assert windows["all"].resolution == 1.0
    assert {w.resolution for cls, w in windows.items() if cls != "all"} == {1.0, 0.001}


def test_a_minute_old_completion_leaves_the_last_minute_but_not_the_hour() -> None:
    t = telemetry()
    t.completed(done(2_000.5), CREATED, 2_006.5)
    t.completed(done(2_100.5), CREATED, 2_100.8)
    windows = t.latencies("p1", 2_101.0)
    assert windows["1m"]["all"].count == 1
    assert windows["1m"]["all"].p99 == pytest.approx(0.3, rel=0.06), "no stale 6 s slot in it"
    assert windows["1h"]["all"].count == 2


@pytest.mark.parametrize("stamp", [0.0, 784_111_777.0, 1_796_123_476.0, 4_102_444_799.0])
def test_http_dates_parse_as_email_utils_would(stamp: float) -> None:
    assert parse_http_date(formatdate(stamp, usegmt=True)) == stamp


def test_obsolete_http_date_forms_still_parse() -> None:
    assert parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT") == 784_111_777.0
    assert parse_http_date("") == 0.0


def test_the_signer_reuses_its_date_only_within_the_same_second() -> None:
    signer = Signer("AK", "SK", "us-east-1")
    one = signer.sign("GET", "h", "/b/k", "", {}, now=datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC))
    two = signer.sign("GET", "h", "/b/k", "", {}, now=datetime(2026, 1, 2, 0, 0, 1, tzinfo=UTC))
    assert one["x-amz-date"] == "20260101T000001Z" and two["x-amz-date"] == "20260102T000001Z"
    assert "20260102/us-east-1/s3/aws4_request" in two["Authorization"]
    assert one["Authorization"] != two["Authorization"]
