"""Explanations without a store: the verdict rules (`judge`), the JSON form and the text."""

from __future__ import annotations

import json
from dataclasses import replace

from engine.checks.explain import Evidence, judge
from engine.checks.explanation import (
    FAILED,
    IN_SYNC,
    MISSING,
    PENDING,
    WAITING,
    Coverage,
    Explanation,
    LinkRow,
    ReplicaRow,
    TargetSide,
    TaskRow,
    VersionRow,
)
from engine.model import Attempt
from engine.policy import Policy

NOW = 1_800_000_000.0
POLICY = Policy("p1", 1, "src", "a-bucket", "dst", "b-bucket")
V1 = VersionRow("v1", NOW - 100, 10, "0123456789abcdef0123456789abcdef", True, False)
T1 = VersionRow("t1", NOW - 90, 10, V1.etag, True, False)
UP = [LinkRow("src", "source", True, NOW - 500), LinkRow("dst", "target", True, NOW - 500)]


def task(state: str = "pending", **changes: object) -> TaskRow:
    row = TaskRow(7, "p1", state, "put", "v1", 10, NOW - 12, 0, NOW - 12, "", "", "", 340, 170.0)
    return replace(row, **changes)  # type: ignore[arg-type]


def evidence(**changes: object) -> Evidence:
    e = Evidence(
        POLICY, [V1], TargetSide("p1", "dst/b-bucket", [T1]), {"v1": "t1"}, [], UP, "",
        NOW - 50, NOW + 3550, True, NOW,
    )  # fmt: skip
    return replace(e, **changes)  # type: ignore[arg-type]


def test_in_sync_by_the_replica_map_and_by_content_without_one() -> None:
    assert judge(evidence())[0] == IN_SYNC
    assert judge(evidence(replicas={}))[0] == IN_SYNC  # same size and MD5: copied before us


def test_a_pending_task_says_how_many_are_ahead_and_how_long_to_go() -> None:
    verdict, reason = judge(evidence(tasks=[task()]))
    assert (verdict, reason) == (PENDING, "pending for 12 s, 340 ahead, about 2 s to go")
    paused = judge(evidence(tasks=[task(drain_rate=0.0)], hold="paused"))
    assert paused == (PENDING, "pending for 12 s, 340 ahead, not draining (paused)")


def test_a_failed_task_wins_over_an_offline_link_which_wins_over_pending() -> None:
    failed = task("failed", ahead=None, error_class="permanent", error_code="NoSuchBucket",
                  last_error="PUT b-bucket/k: NoSuchBucket")  # fmt: skip
    down = [UP[0], LinkRow("dst", "target", False, NOW - 125, "connection refused")]
    assert judge(evidence(tasks=[failed], links=down)) == (
        FAILED,
        "put NoSuchBucket: PUT b-bucket/k: NoSuchBucket",
    )
    verdict, reason = judge(evidence(tasks=[task()], links=down))
    assert verdict == WAITING
    assert reason == "target dst offline for 2m05s (connection refused), 1 task(s) waiting"


def test_missing_says_whether_the_next_scan_or_a_resync_fixes_it() -> None:
    late = replace(V1, mtime=NOW - 10)
    verdict, reason = judge(evidence(source=[late], replicas={}, target=TargetSide("p1", "t")))
    assert verdict == MISSING and "written after the last scan started" in reason
    assert "the next scan will queue it (due " in reason
    old = judge(evidence(replicas={}, target=TargetSide("p1", "t"), last_scan_at=NOW - 5))
    assert old[0] == MISSING and "replicate resync start src/a-bucket --id p1" in old[1]
    nothing = judge(evidence(replicas={"v1": None}, target=TargetSide("p1", "t")))
    assert nothing[0] == MISSING and "records nothing to copy" in nothing[1]
    lost = judge(evidence(target=TargetSide("p1", "t")))
    assert lost[0] == MISSING and "the target lost replica t1" in lost[1]


def test_the_json_form_reads_back_as_the_same_value() -> None:
    history = [Attempt(1, NOW - 5, "permanent", "NoSuchBucket")]
    found = Explanation(
        "src/a-bucket", "k", NOW, FAILED, "put NoSuchBucket",
        [Coverage("p1", "dst/b-bucket", True, "", FAILED, "put NoSuchBucket")],
        [V1], "", [TargetSide("p1", "dst/b-bucket", [], "NoSuchBucket")],
        [ReplicaRow("p1", "v0", None)], [task("failed", history=history)], UP,
    )  # fmt: skip
    data = json.loads(json.dumps(found.to_dict()))
    assert data["tasks"][0]["eta"] == 2.0
    assert Explanation.from_dict(data) == found


def test_text_from_stores_cannot_drive_the_terminal() -> None:
    found = Explanation(
        "src/a-bucket", "evil\x1b]0;owned\x07.txt", NOW, FAILED, "bad\rreason",
        tasks=[task("failed", last_error="x\x1b[2Jy", error_class="permanent")],
    )  # fmt: skip
    text = "\n".join(found.lines())
    assert "\x1b" not in text and "\r" not in text and "\x07" not in text
    assert found.lines()[0] == "src/a-bucket/evil\\x1b]0;owned\\x07.txt: failed: bad\\x0dreason"
