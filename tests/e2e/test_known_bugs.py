"""Known wrong figures and writes (issue 11, item 8), each shown fixed on the real servers.

The same stories run on MemoryStore in tests/replication (test_transfer, test_resync);
here SeaweedFS lists, deletes and tags, and the engine and CLI report.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

from minio.commonconfig import Tags

from engine.model import Op, Outcome, Task
from engine.replication.transfer import execute
from tests.conftest import Pair, Rig, eventually
from tests.e2e.test_resync import finished, start


async def test_a_delete_marker_task_run_again_makes_no_second_marker(rig: Rig) -> None:
    """A crash between making the marker and recording it runs the task again."""
    version = rig.pair.put("k", b"v1")
    rig.pair.dst.put_object(rig.pair.dst_bucket, "k/longer", io.BytesIO(b"x"), 1)  # listed too
    copy = Task(policy="p1", key="k", version_id=version, op=Op.PUT, size=2, id=1)
    assert (await execute(copy, rig.ctx)).outcome is Outcome.REPLICATED
    rig.pair.src.remove_object(rig.pair.src_bucket, "k")  # a delete marker on the source
    marker = Task(policy="p1", key="k", version_id="dm", op=Op.DELETE_MARKER, id=2)

    first = await execute(marker, rig.ctx)
    again = await execute(marker, rig.ctx)

    assert (first.outcome, again.outcome) == (Outcome.REPLICATED, Outcome.ALREADY)
    assert again.target_version == first.target_version
    listed = rig.pair.dst.list_objects(rig.pair.dst_bucket, prefix="k", include_version=True)
    versions = [v for v in listed if v.object_name == "k"]
    assert (len(versions), sum(v.is_delete_marker for v in versions)) == (2, 1)


def test_a_tag_filtered_resync_reports_no_work_when_every_match_is_there(pair: Pair) -> None:
    """67 of 200 objects match `team=a&class=hot`; all 67 replicated: the resync queues 0.
    It reported QUEUED 133, REPLICATED 0: every object the filter excludes, as work."""
    hot, cold = Tags.new_object_tags(), Tags.new_object_tags()
    hot.update({"team": "a", "class": "hot"})
    cold.update({"team": "a", "class": "cold"})

    def put(i: int) -> None:
        tags = hot if i % 3 == 0 else cold
        pair.src.put_object(pair.src_bucket, f"k/{i:04}", io.BytesIO(b"x"), 1, tags=tags)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(200)))
    pair.add_policy("--tags", "team=a&class=hot")
    pair.start_engine()
    eventually(lambda: len(pair.target_latest()) == 67)

    start(pair)
    done = eventually(lambda: finished(pair))
    assert (done["scanned"], done["enqueued"], done["replicated"]) == (200, 0, 0)
    assert len(pair.target_latest()) == 67
