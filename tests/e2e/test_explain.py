"""`replicate explain`, failures by cause and holds, on real servers with a real engine.

One engine and one source bucket serve the whole module: each policy covers its
own prefix and is put in one situation for real (replicated, paused, its target
bucket deleted under it, its target behind a proxy that is cut, a tag filter
the object misses), and one object is written after the only scan. Each test
then asks about a key of one situation, through the CLI (local and --connect)
and the API, and checks the verdict against what was built.
"""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from minio.commonconfig import Tags

from engine.demo.faults import FaultProxy
from engine.demo.seaweed import SeaweedServer
from tests.conftest import MIRRORLINE, Pair, eventually, make_bucket, new_pair
from tests.engines import Api, LoopThread, start

HELD, GONE_PUTS, GONE_DELETED, GONE2 = 30, 20, 8, 12
# Keys of prefixes, policies and target buckets: policy p-NAME covers NAME/ into dst-NAME.
POLICIES = ("docs", "held", "gone", "gone2", "down", "tagged")


@dataclass
class World:
    pair: Pair
    api: Api
    proxy: FaultProxy
    loop: LoopThread
    late_key: str

    @property
    def source(self) -> str:
        return f"src/{self.pair.src_bucket}"

    def explain(self, key: str, *options: str) -> tuple[int, str]:
        found = self.pair.ml("replicate", "explain", f"{self.source}/{key}", *options, check=False)
        assert found.returncode in (0, 1), found.stderr
        return found.returncode, found.stdout

    def explain_json(self, key: str) -> dict[str, Any]:
        return self.api.get("/v1/explain", source=self.source, key=key)

    def connect(self) -> tuple[str, ...]:
        return ("--connect", self.api.url, "--token", self.api.token)

    def tasks_table(self) -> list[tuple[str, str, str, str, str]]:
        """The engine's tasks, read straight from its database (not through mirrorline)."""
        db = sqlite3.connect(f"file:{self.pair.state_dir / 'mirrorline.db'}?mode=ro", uri=True)
        try:
            return db.execute(
                "SELECT policy, op, error_class, error_code, state FROM tasks"
            ).fetchall()
        finally:
            db.close()


def backlog(api: Api, policy: str) -> dict[str, Any]:
    """The policy's backlog from the engine's live snapshot (cheaper to poll than the CLI)."""
    return api.policy(policy)["backlog"]


@pytest.fixture(scope="module")
def world(
    servers: tuple[SeaweedServer, SeaweedServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    root = tmp_path_factory.mktemp("explain")
    pair = new_pair(servers, "explain-src", "explain-dst-docs", root / "state")
    loop = LoopThread()
    proxy = FaultProxy("127.0.0.1", pair.target.port)
    port = loop.run(proxy.start())
    target = pair.target
    pair.ml(
        "alias", "set", "dstp", f"http://127.0.0.1:{port}", target.access_key, target.secret_key
    )
    try:
        yield build(pair, proxy, loop)
    finally:
        for proc in pair.engines:
            pair.stop_engine(proc)
        loop.run(proxy.stop())
        loop.close()


def build(pair: Pair, proxy: FaultProxy, loop: LoopThread) -> World:
    body = b"explain me"
    pair.put("docs/a.txt", body)
    pair.put("logs/x.txt", body)
    pair.put("down/d.txt", body)
    tags = Tags.new_object_tags()
    tags["env"] = "dev"
    pair.put("tagged/t.txt", body, tags=tags)
    for i in range(HELD):
        pair.put(f"held/{i:03}", body)
    for i in range(GONE_PUTS):
        pair.put(f"gone/{i:03}", body)
    for i in range(GONE_DELETED):
        pair.put(f"gone/del{i:03}", body)
        pair.src.remove_object(pair.src_bucket, f"gone/del{i:03}")
    for i in range(GONE2):
        pair.put(f"gone2/{i:03}", body)
    # One scan at the start, the next an hour later: what is written after it stays missing.
    api = start(pair, "--scan-interval", "3600")
    api.post("/v1/pause", {})  # the whole engine, until every policy is in place
    for name in POLICIES:
        bucket = f"explain-dst-{name}"
        if name != "docs":
            make_bucket(pair.dst, bucket)
        spec = {
            "source": f"src/{pair.src_bucket}",
            "target": f"{'dstp' if name == 'down' else 'dst'}/{bucket}",
            "id": f"p-{name}",
            "prefix": f"{name}/",
        }
        api.post("/v1/policies", spec | ({"tags": "env=prod"} if name == "tagged" else {}))
    for name in ("held", "gone", "gone2"):
        api.post("/v1/pause", {"policy": f"p-{name}"})
    loop.call(proxy.cut)
    api.post("/v1/resume", {})
    gone = GONE_PUTS + 2 * GONE_DELETED  # a deleted key: its version and its delete marker
    eventually(lambda: backlog(api, "p-gone")["pending"] == gone, 60)
    eventually(lambda: backlog(api, "p-gone2")["pending"] == GONE2, 60)
    eventually(lambda: backlog(api, "p-held")["pending"] == HELD, 60)
    for name in ("gone", "gone2"):  # queued while the bucket existed; now it does not
        pair.dst.remove_bucket(f"explain-dst-{name}")
        api.post("/v1/resume", {"policy": f"p-{name}"})
    eventually(lambda: backlog(api, "p-gone")["failed"] == gone, 60)
    eventually(lambda: backlog(api, "p-gone2")["failed"] == GONE2, 60)
    eventually(lambda: backlog(api, "p-docs")["replicated"] >= 1, 60)
    late = "docs/late.txt"
    pair.src.put_object(pair.src_bucket, late, io.BytesIO(body), len(body))
    return World(pair, api, proxy, loop, late)


def test_a_replicated_object_is_in_sync_exit_0(world: World) -> None:
    code, text = world.explain("docs/a.txt")
    print(text)
    assert code == 0
    assert text.splitlines()[0].startswith(f"{world.source}/docs/a.txt: in sync: ")
    data = world.explain_json("docs/a.txt")
    assert data["verdict"] == "in sync"
    (source,) = data["source_versions"]
    (side,) = data["target_versions"]
    (replica,) = [r for r in data["replicas"] if r["policy"] == "p-docs"]
    assert replica["source_version"] == source["version_id"]
    assert replica["target_version"] == side["versions"][0]["version_id"]
    assert data["tasks"] == []


def test_every_json_key_the_issue_names_is_there(world: World) -> None:
    data = world.explain_json("held/000")
    for name in ("verdict", "reason", "policies", "source_versions", "target_versions",
                 "replicas", "tasks", "links"):  # fmt: skip
        assert name in data, name
    assert {p["policy"] for p in data["policies"]} == {f"p-{n}" for n in POLICIES}
    assert {(link["alias"], link["role"]) for link in data["links"]} == {
        ("src", "source"),
        ("dst", "target"),
    }


def test_an_object_outside_every_prefix_is_not_covered_naming_the_prefix(world: World) -> None:
    code, text = world.explain("logs/x.txt")
    assert code == 1
    first = text.splitlines()[0]
    assert ": not covered: " in first and "outside the policy's prefix 'docs/'" in first


def test_a_tag_filter_the_object_misses_is_named_with_its_tags(world: World) -> None:
    data = world.explain_json("tagged/t.txt")
    assert data["verdict"] == "not covered"
    (tagged,) = [p for p in data["policies"] if p["policy"] == "p-tagged"]
    assert not tagged["covers"] and "env=prod" in tagged["why"] and "env=dev" in tagged["why"]


def test_behind_a_paused_policy_it_is_pending_with_the_count_ahead(world: World) -> None:
    code, text = world.explain("held/020", *world.connect())
    print(text)
    assert code == 1
    first = text.splitlines()[0]
    assert first.startswith(f"{world.source}/held/020: pending for ")
    assert ", 20 ahead, not draining (paused)" in first
    (task,) = world.explain_json("held/020")["tasks"]
    assert task["state"] == "pending" and task["ahead"] == 20 and task["eta"] is None


def test_a_deleted_target_bucket_fails_with_nosuchbucket(world: World) -> None:
    code, text = world.explain("gone/005")
    print(text)
    assert code == 1
    assert ": failed: put NoSuchBucket: " in text.splitlines()[0]
    (task,) = world.explain_json("gone/005")["tasks"]
    assert task["state"] == "failed" and task["error_code"] == "NoSuchBucket"
    assert task["history"] and task["history"][-1]["kind"] == "permanent"


def test_an_offline_target_is_waiting_and_status_says_why(world: World) -> None:
    def waiting() -> dict[str, Any]:
        data = world.explain_json("down/d.txt")
        return data if data["verdict"] == "waiting" else {}

    data = eventually(waiting, 30)
    (link,) = [k for k in data["links"] if k["alias"] == "dstp"]
    assert link["online"] is False and link["since"]
    assert data["reason"].startswith("target dstp offline for ")
    code, text = world.explain("down/d.txt")
    print(text)
    assert code == 1 and ": waiting: target dstp offline for " in text.splitlines()[0]
    hold = eventually(lambda: world.api.policy("p-down")["hold"], 30)
    assert hold.startswith("waiting: dst offline ")
    table = world.pair.ml("replicate", "status").stdout.splitlines()
    (row,) = [line for line in table if line.startswith("p-down ")]
    assert "waiting: dst offline " in row
    (held,) = [line for line in table if line.startswith("p-held ")]
    assert "paused" in held
    flowing = world.api.policy("p-docs")
    assert flowing["hold"] == "" and flowing["state"] == "enabled"


def test_written_after_the_last_scan_it_is_missing_and_the_next_scan_is_named(
    world: World,
) -> None:
    code, text = world.explain(world.late_key)
    print(text)
    assert code == 1
    first = text.splitlines()[0]
    assert ": missing: written after the last scan started (" in first
    assert "the next scan will queue it (due " in first


def test_a_key_the_source_never_had_lacks_it_exit_1(world: World) -> None:
    code, text = world.explain("docs/never-written.txt")
    assert code == 1
    lacks = f": source lacks key: {world.source} has no version or delete marker of the key"
    assert text.splitlines()[0].endswith(lacks)


def test_a_path_without_a_key_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = subprocess.run(
        [*MIRRORLINE, "--state-dir", str(tmp_path), "replicate", "explain", "src/bucket"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and not bad.stdout
    assert bad.stderr == "mirrorline: error: expected ALIAS/BUCKET/KEY, got 'src/bucket'\n"


def cause_of(group: dict[str, Any]) -> tuple[str, str, str, str]:
    cause = group["cause"]
    return cause["policy"], cause["op"], cause["error_class"], cause["code"]


def test_failures_group_by_cause_as_the_tasks_table_counts_them(world: World) -> None:
    parked = Counter(
        (policy, op, error_class, code)
        for policy, op, error_class, code, state in world.tasks_table()
        if state in ("failed", "retrying")
    )
    assert len(parked) == 3  # put and delete-marker of p-gone, put of p-gone2
    api = world.api.get("/v1/failures", by="reason")["groups"]
    assert Counter({cause_of(g): g["count"] for g in api}) == parked
    by_reason = ("replicate", "backlog", world.source, "--failed", "--by", "reason")
    cli = json.loads(world.pair.ml(*by_reason, "--json", *world.connect()).stdout)
    assert Counter({cause_of(g): g["count"] for g in cli}) == parked
    text = world.pair.ml(*by_reason)
    rows = text.stdout.splitlines()[1:]
    assert len(rows) == 3 and all(r.startswith("NoSuchBucket  ") for r in rows)
    print(text.stdout)
    one = api[0]
    page = world.api.get(
        "/v1/tasks",
        limit=1000,
        **{f"cause_{k}": v for k, v in one["cause"].items()},
    )
    assert len(page["tasks"]) == one["count"]
    assert {t["error_code"] for t in page["tasks"]} == {one["cause"]["code"]}


def test_the_cli_answer_is_the_api_answer(world: World) -> None:
    local = world.pair.ml("replicate", "explain", f"{world.source}/gone/001", "--json", check=False)
    mine, theirs = json.loads(local.stdout), world.explain_json("gone/001")
    assert local.returncode == 1 and mine["verdict"] == theirs["verdict"] == "failed"
    for data in (mine, theirs):
        data.pop("at")
    assert mine == theirs
