"""Races with the source: a key changes while its copy is on the wire, and one key gets
twenty versions in quick succession. The verifier has the last word each time."""

from __future__ import annotations

import io
import os
import time

import pytest
from minio.error import S3Error

from tests.conftest import Pair, eventually
from tests.faultkit import IN_PARTS, PART_SIZE, MiB, progress
from tests.mirror import read_bucket, unfinished_uploads, verify_pair

pytestmark = pytest.mark.faults

BIG = PART_SIZE + 2 * MiB  # copied in two parts: long enough on a capped link to act during it


def settled(pair: Pair) -> bool:
    now = progress(pair.state_dir)
    return bool(now and now.landed and now.active == 0)


def top_of(pair: Pair, key: str) -> str | None:
    """The `n` metadata of the target's latest version of `key` (None: not there yet)."""
    try:
        return pair.dst.stat_object(pair.dst_bucket, key).metadata.get("x-amz-meta-n")
    except S3Error as exc:
        if exc.code == "NoSuchKey":
            return None
        raise


def test_a_key_overwritten_deleted_or_removed_while_its_copy_runs_ends_as_the_source(
    pair: Pair,
) -> None:
    racing = {"race/overwritten.bin", "race/deleted.bin", "race/removed.bin"}
    first = {key: pair.put(key, os.urandom(BIG), metadata={"v": "1"}) for key in sorted(racing)}
    pair.put("race/bystander.txt", b"unchanged")
    # Capped at 4 MiB/s for the three copies together: each takes ~7 s, parts on the wire.
    pair.add_policy("--bandwidth", "4MiB")
    pair.start_engine(*IN_PARTS)
    eventually(lambda: set(unfinished_uploads(pair.dst, pair.dst_bucket)) >= racing, 120, 0.05)
    mid_copy = progress(pair.state_dir)
    assert mid_copy is not None and mid_copy.multipart == 3, mid_copy
    # All three copies are mid-body now; the source changes under each of them.
    pair.put("race/overwritten.bin", os.urandom(BIG // 2), metadata={"v": "2"})
    pair.src.remove_object(pair.src_bucket, "race/deleted.bin")  # a delete marker on top
    # The very version being copied is removed for good: its replica must go too.
    pair.src.remove_object(
        pair.src_bucket, "race/removed.bin", version_id=first["race/removed.bin"]
    )
    eventually(lambda: settled(pair), timeout=180, interval=0.1)
    figures = verify_pair(pair)
    target = read_bucket(pair.dst, pair.dst_bucket)
    assert [v.metadata.get("v") for v in target["race/overwritten.bin"]] == ["2", "1"]
    # (SeaweedFS may list the marker after the version: which is latest is the point.)
    assert {(v.marker, v.latest) for v in target["race/deleted.bin"]} == {
        (True, True),
        (False, False),
    }
    assert "race/removed.bin" not in target
    print(f"three races mid-copy (overwrite, delete marker, version removed): {figures}")


def test_twenty_versions_in_quick_succession_end_with_the_newest_on_top(pair: Pair) -> None:
    pair.put("hot/seed.txt", b"first")
    pair.add_policy()
    pair.start_engine(*IN_PARTS)
    eventually(lambda: settled(pair), timeout=60, interval=0.1)  # running and caught up
    started = time.monotonic()
    for n in range(20):
        body = os.urandom(1024 + n) if n % 4 else os.urandom(PART_SIZE + MiB)  # some multipart
        pair.src.put_object(
            pair.src_bucket, "hot/key", io.BytesIO(body), len(body), metadata={"n": str(n)}
        )
    written = time.monotonic() - started
    eventually(lambda: settled(pair) and top_of(pair, "hot/key") == "19", 180, 0.2)
    figures = verify_pair(pair, history=False)  # older versions may rightly be superseded
    landed = len(read_bucket(pair.dst, pair.dst_bucket)["hot/key"])
    print(f"20 versions written in {written:.1f}s; {landed} reached the target; {figures}")
