"""The engine's decisions as plain functions: what to copy, when to retry, how to sign."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from engine.errors import AccessDeniedError, NotFoundError, PermanentError, TransientError
from engine.model import Op
from engine.policy import Policy, parse_bandwidth, parse_tags
from engine.replication.scanner import plan_key
from engine.retry import RetryPolicy
from engine.s3 import ListedVersion
from engine.s3.errors import classify
from engine.s3.sigv4 import Signer
from engine.state.queue import Replica
from engine.telemetry.meter import Meter

POLICY = Policy(
    id="p",
    priority=1,
    source_alias="a",
    source_bucket="src",
    target_alias="b",
    target_bucket="dst",
    created_at=1000.0,
)


def version(vid: str, mtime: float, marker: bool = False, key: str = "k") -> ListedVersion:
    return ListedVersion(key, vid, False, marker, mtime, 0 if marker else 5, "" if marker else "e")


def test_plan_copies_every_unreplicated_version_oldest_first() -> None:
    source = [version("v3", 30), version("v2", 20), version("v1", 10)]  # listing: newest first
    tasks = plan_key(POLICY, "k", source, set(), {}, set())
    assert [(t.version_id, t.seq, t.op) for t in tasks] == [
        ("v1", 0, Op.PUT),
        ("v2", 1, Op.PUT),
        ("v3", 2, Op.PUT),
    ]
    assert not any(t.target_has_key for t in tasks)


def test_plan_skips_replicated_versions_and_recopies_a_lost_replica() -> None:
    source = [version("v2", 20), version("v1", 10)]
    replicas = {
        "v1": Replica("k", "v1", "t1", 10, 0),
        "v2": Replica("k", "v2", "t2", 20, 1),
    }
    assert plan_key(POLICY, "k", source, {"t1", "t2"}, replicas, set()) == []
    (task,) = plan_key(POLICY, "k", source, {"t1"}, replicas, set())
    assert (task.version_id, task.target_version, task.target_has_key) == ("v2", "t2", True)


def test_plan_checks_the_target_when_a_mapped_replica_is_missing_from_a_stale_listing() -> None:
    # The target page was listed before this copy landed: the map knows the replica, the
    # listing does not. Copying blindly would write a second version on the target.
    source = [version("v1", 10)]
    replicas = {"v1": Replica("k", "v1", "t1", 10, 0)}
    (task,) = plan_key(POLICY, "k", source, set(), replicas, set())
    assert (task.target_version, task.target_has_key) == ("t1", True)


def test_plan_mirrors_permanent_deletes_only_when_enabled() -> None:
    replicas = {"gone": Replica("k", "gone", "t-gone", 5, 0)}
    source = [version("v1", 10)]
    tasks = plan_key(POLICY, "k", source, {"t-gone"}, replicas, set())
    deletes = [t for t in tasks if t.op is Op.DELETE_VERSION]
    assert [(t.version_id, t.target_version) for t in deletes] == [("gone", "t-gone")]
    no_delete = Policy(**{**POLICY.__dict__, "replicate": frozenset({"existing-objects"})})
    assert all(t.op is Op.PUT for t in plan_key(no_delete, "k", source, set(), replicas, set()))


def test_plan_honours_delete_marker_option_prefix_existing_objects_and_echoes() -> None:
    source = [version("dm", 30, marker=True), version("v1", 10)]
    ops = [t.op for t in plan_key(POLICY, "k", source, set(), {}, set())]
    assert ops == [Op.PUT, Op.DELETE_MARKER]
    no_markers = Policy(**{**POLICY.__dict__, "replicate": frozenset({"existing-objects"})})
    assert [t.op for t in plan_key(no_markers, "k", source, set(), {}, set())] == [Op.PUT]
    prefixed = Policy(**{**POLICY.__dict__, "prefix": "logs/"})
    assert plan_key(prefixed, "k", source, set(), {}, set()) == []
    new_only = Policy(**{**POLICY.__dict__, "replicate": frozenset({"delete-marker"})})
    recent = [version("v9", 2000), version("v0", 10)]
    assert [t.version_id for t in plan_key(new_only, "k", recent, set(), {}, set())] == ["v9"]
    assert plan_key(POLICY, "k", [version("v1", 10)], set(), {}, {"v1"}) == []


def test_retry_backoff_grows_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(base=1.0, cap=60.0, max_attempts=5)
    rng = random.Random(7)
    delays = [policy.next_delay(n, rng) for n in range(1, 9)]
    for n, delay in enumerate(delays, 1):
        ceiling = min(60.0, 2 ** (n - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert max(delays) <= 60.0 and delays[-1] >= 30.0
    assert not policy.exhausted(4) and policy.exhausted(5)


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (503, "SlowDown", TransientError),
        (500, "InternalError", TransientError),
        (403, "AccessDenied", AccessDeniedError),
        (404, "NoSuchBucket", PermanentError),
        (403, "SignatureDoesNotMatch", AccessDeniedError),
        (403, "InvalidAccessKeyId", AccessDeniedError),
        (404, "NoSuchKey", NotFoundError),
        (404, "NoSuchVersion", NotFoundError),
    ],
)
def test_s3_errors_are_classified(status: int, code: str, kind: type) -> None:
    error = classify(status, code, "msg", "PUT b/k")
    assert type(error) is kind
    assert error.reason == f"PUT b/k: {code}: msg"
    assert error.retryable is (kind is TransientError)
    # A refused credential is still "permanent" to a task; only the checks ask for more.
    assert error.kind == {TransientError: "retryable", NotFoundError: "not-found"}.get(
        kind, "permanent"
    )


def test_parsers() -> None:
    assert parse_bandwidth("50MiB") == 50 * 1024**2
    assert parse_bandwidth("2G") == 2 * 1000**3
    assert parse_bandwidth("100MB/s") == 100 * 1000**2
    assert parse_tags("a=1&b=x y") == {"a": "1", "b": "x y"}


def test_meter_counts_complete_seconds_in_the_window() -> None:
    meter = Meter(window=10)
    for second in range(100, 110):
        meter.add(nbytes=1000, objects=2, now=second + 0.5)
    assert meter.rate(now=110.2) == (1000.0, 2.0)
    assert meter.rate(now=125.0) == (0.0, 0.0)


def test_sigv4_matches_the_aws_documented_example() -> None:
    # AWS SigV4 S3 example "GET Object" (docs: sig-v4-header-based-auth), Range header included.
    signer = Signer("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "us-east-1")
    headers = signer.sign(
        "GET",
        "examplebucket.s3.amazonaws.com",
        "/test.txt",
        "",
        {"Range": "bytes=0-9"},
        payload_hash="e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        now=datetime(2013, 5, 24, tzinfo=UTC),
    )
    assert headers["Authorization"].endswith(
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )
