"""A write the killed engine sent lands after the restarted engine looked: no second copy.

The crash suite once ended (in CI) with one version held twice on the target. The cause:
a SIGKILL does not stop a request the server already has. The first PUT into a fresh
SeaweedFS bucket lands 0.2 s after its client died on an idle machine (the bucket's
volumes are grown first), more on a loaded one; the restarted engine ran the task again,
looked before it landed, and copied once more. Here a proxy in front of the target holds
the killed engine's last request (a CompleteMultipartUpload; a single PUT) until the
restarted engine has looked at that key, so "late" no longer depends on the machine's load.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time

import pytest

from tests.conftest import Pair, eventually
from tests.faultkit import IN_PARTS, db_of
from tests.holdproxy import HoldProxy
from tests.mirror import unfinished_uploads

pytestmark = pytest.mark.faults
MiB = 1024 * 1024


def through_proxy(pair: Pair, hold: str) -> HoldProxy:
    """Point alias `dst` at a proxy that holds the first request matching `hold` and
    SIGKILLs the running engine the moment it has that request whole."""
    proxy = HoldProxy(pair.target.port, hold, lambda: os.kill(pair.engines[-1].pid, signal.SIGKILL))
    target = pair.target
    pair.ml(
        "alias",
        "set",
        "dst",
        f"http://127.0.0.1:{proxy.port}",
        target.access_key,
        target.secret_key,
    )
    return proxy


def killed_then_rerun(pair: Pair, proxy: HoldProxy, key: str, rerun_looks: str) -> float:
    """Run the engine until the proxy holds its request (and killed it); start another;
    release the held request once the new engine has asked `rerun_looks` (or started
    writing `key` anew, which is the defect); returns how late the held write went on."""
    pair.add_policy()
    first = pair.start_engine(*IN_PARTS)
    eventually(proxy.held.is_set, timeout=60, interval=0.02)
    assert pair.stop_engine(first) == -signal.SIGKILL, pair.engine_log()[-2000:]
    killed, since = time.monotonic(), len(proxy.lines)
    final = pair.start_engine("--until-synced", *IN_PARTS)
    anew = rf"^(PUT|POST) /[^ ]+/{key}(\?uploads=)? HTTP"
    eventually(
        lambda: proxy.asked(rerun_looks, since) or proxy.asked(anew, since),
        timeout=60,
        interval=0.02,
    )
    proxy.release()
    late = time.monotonic() - killed
    assert final.wait(120) == 0, pair.engine_log()[-3000:]
    print(f"rerun to synced {time.monotonic() - killed:.1f}s")
    return late


def assert_one_replica(pair: Pair, key: str, source_version: str, data: bytes) -> None:
    listed = pair.dst.list_objects(pair.dst_bucket, prefix=key, include_version=True)
    versions = [v.version_id for v in listed if v.object_name == key]
    assert len(versions) == 1, f"{key} is held {len(versions)} times on the target"
    assert pair.dst.get_object(pair.dst_bucket, key).read() == data
    assert unfinished_uploads(pair.dst, pair.dst_bucket) == []
    with sqlite3.connect(f"file:{db_of(pair.state_dir)}?mode=ro", uri=True) as conn:
        mapped = conn.execute(
            "SELECT target_version FROM replicas WHERE key = ? AND source_version = ?",
            (key, source_version),
        ).fetchall()
    assert mapped == [(versions[0],)]


def test_a_completion_landing_after_the_kill_is_found_not_uploaded_again(pair: Pair) -> None:
    data = os.urandom(2 * 8 * MiB + 4321)  # three parts
    version = pair.put("big.bin", data)
    proxy = through_proxy(pair, r"^POST /[^ ]+/big\.bin\?uploadId=")
    try:
        late = killed_then_rerun(pair, proxy, r"big\.bin", r"[?&]prefix=big\.bin&uploads=")
        assert proxy.forwarded.is_set()
    finally:
        proxy.close()
    print(f"the killed engine's CompleteMultipartUpload went on {late:.1f}s after the kill")
    assert_one_replica(pair, "big.bin", version, data)
    assert "aborting upload" not in pair.engine_log(), "the completing upload was waited for"


def test_a_put_landing_after_the_kill_is_found_not_copied_again(pair: Pair) -> None:
    data = os.urandom(3000)
    version = pair.put("small.bin", data)
    proxy = through_proxy(pair, r"^PUT /[^ ]+/small\.bin HTTP")
    try:
        late = killed_then_rerun(pair, proxy, r"small\.bin", r"[?&]prefix=small\.bin&versions=")
    finally:
        proxy.close()
    print(f"the killed engine's PUT went on {late:.1f}s after the kill")
    assert_one_replica(pair, "small.bin", version, data)
