"""The HTTP API: in-process through httpx's ASGI transport, and end to end through a real
`mirrorline run --listen` (uvicorn) replicating between the two SeaweedFS servers."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine.aliases import Alias, AliasBook
from engine.errors import (
    BY_KIND,
    MalformedError,
    MirrorlineError,
    MissingError,
    NotFoundError,
    TransientError,
    UserError,
)
from engine.model import NewTask, Op
from engine.policy import Policy
from engine.service import Service
from engine.service.http import create_app
from engine.service.local import LocalService
from engine.service.remote import RemoteService, error_of
from engine.state import open_state
from tests.conftest import Pair, eventually, make_bucket
from tests.engines import minio_event, start

TOKEN = "test-token-0123456789abcdef"
CAUSE = "cause_policy=p1&cause_op=put&cause_error_class=permanent&cause_code=AccessDenied"
SECRET = "alias-secret-key-never-shown"
ENDPOINTS = [
    ("GET", "/v1/status", None),
    ("GET", "/v1/policies", None),
    ("POST", "/v1/policies", {"source": "a/b", "target": "c/d"}),
    ("DELETE", "/v1/policies/p1", None),
    ("GET", "/v1/policies/p1", None),
    ("PUT", "/v1/policies/p1", {"source": "a/b", "target": "c/d"}),
    ("POST", "/v1/policies/p1/enabled", {"enabled": False}),
    ("GET", "/v1/policies/p1/diff", None),
    ("POST", "/v1/policies/p1/verify", {}),
    ("GET", "/v1/tasks?state=failed", None),
    ("GET", "/v1/failures?by=reason", None),
    ("GET", "/v1/explain?source=src/bucket-a&key=logs/a", None),
    ("GET", "/v1/transfers", None),
    ("GET", "/v1/history?since=0", None),
    ("POST", "/v1/pause", {}),
    ("POST", "/v1/resume", {}),
    ("POST", "/v1/retry", {"all": True}),
    ("GET", "/v1/audit", None),
    ("GET", "/v1/resync", None),
    ("POST", "/v1/resync", {"policy": "p1"}),
    ("POST", "/v1/resync/cancel", {"policies": ["p1"]}),
    ("DELETE", "/v1/resync/p1", None),
    ("GET", "/v1/aliases", None),
    ("DELETE", "/v1/aliases/src", None),
    ("POST", "/v1/events/minio", {"Records": []}),
    ("GET", "/metrics", None),
]


@pytest.fixture
async def app_client(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, LocalService]]:
    state = await open_state(tmp_path / "mirrorline.db")
    book = AliasBook(tmp_path / "aliases.json")
    book.set(Alias("src", "http://127.0.0.1:1", "key", SECRET))
    service = LocalService(state, book, actor="api")
    await state.policies.add(Policy("p1", 1, "src", "bucket-a", "dst", "bucket-b", prefix="logs/"))
    transport = httpx.ASGITransport(app=create_app(service, TOKEN))
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://api",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as client:
        yield client, service
    await state.close()


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
@pytest.mark.parametrize("auth", [None, "Bearer wrong-token-0123456789", TOKEN, "Basic eDp5"])
async def test_every_endpoint_requires_the_token(
    app_client: tuple[httpx.AsyncClient, LocalService],
    method: str,
    path: str,
    body: Any,
    auth: str | None,
) -> None:
    client, _ = app_client
    headers = {"Authorization": auth} if auth else {}
    client.headers.pop("Authorization")
    resp = await client.request(method, path, json=body, headers=headers)
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == "Bearer"
    assert set(resp.json()) == {"error", "kind"}


async def test_metrics_can_be_public(tmp_path: Path) -> None:
    state = await open_state(tmp_path / "mirrorline.db")
    service = LocalService(state, AliasBook(tmp_path / "aliases.json"))
    app = create_app(service, TOKEN, metrics_public=True)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api"
    ) as client:
        assert (await client.get("/metrics")).status_code == 200
        assert (await client.get("/v1/status")).status_code == 401
    await state.close()


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("POST", "/v1/policies", b"{not json", 400, "not valid JSON"),
        ("POST", "/v1/policies", b"[1, 2]", 400, "JSON object"),
        ("POST", "/v1/policies", {"target": "dst/bucket-b"}, 400, "'source' is required"),
        ("POST", "/v1/policies", {"source": "src/bucket-a", "target": 5}, 400, "'target' must be"),
        (
            "POST",
            "/v1/policies",
            {"source": "src/bucket-a", "target": "dst/bucket-b", "x": 1},
            400,
            "unknown field",
        ),
        (
            "POST",
            "/v1/policies",
            {"source": "src/bucket-a", "target": "dst/bucket-b", "priority": "1"},
            400,
            "int",
        ),
        (
            "POST",
            "/v1/policies",
            {"source": "src/bucket-a", "target": "dst/bucket-b", "enabled": 1},
            400,
            "bool",
        ),
        (
            "POST",
            "/v1/policies",
            {"source": "nobucket", "target": "dst/bucket-b"},
            422,
            "ALIAS/BUCKET",
        ),
        (
            "POST",
            "/v1/policies",
            {"source": "src/bucket-a", "target": "dst/bucket-b", "bandwidth": "9 parsecs"},
            422,
            "bandwidth",
        ),
        (
            "POST",
            "/v1/policies",
            {"source": "src/bucket-a", "target": "dst/bucket-b", "replicate": ["x"]},
            422,
            "x",
        ),
        (
            "POST",
            "/v1/policies",
            {"source": "ghost/bucket-a", "target": "dst/bucket-b"},
            422,
            "unknown alias",
        ),
        (
            "POST",
            "/v1/policies",
            {"id": "p1", "source": "src/bucket-a", "target": "dst/bucket-b"},
            422,
            "exists",
        ),
        ("DELETE", "/v1/policies/nope", None, 404, "no policy with id"),
        ("GET", "/v1/policies/nope", None, 404, "no policy with id"),
        ("GET", "/v1/policies/nope/diff", None, 404, "no policy with id"),
        ("POST", "/v1/policies/nope/verify", {}, 404, "no policy with id"),
        ("POST", "/v1/policies/p1/verify", {"sample": 0}, 422, "sample must be at least"),
        ("POST", "/v1/policies/p1/verify", {"sample": "3"}, 400, "'sample' must be a int"),
        ("POST", "/v1/policies/p1/verify", {"concurrency": 999}, 422, "concurrency must be"),
        ("POST", "/v1/policies/p1/verify", {"seeds": 1}, 400, "unknown field 'seeds'"),
        ("DELETE", "/v1/aliases/nope", None, 404, "unknown alias 'nope'"),
        ("DELETE", "/v1/aliases/src", None, 422, "used by policy p1"),
        ("POST", "/v1/resync", {}, 400, "either 'policy' or 'policies'"),
        ("POST", "/v1/resync", {"policy": "p1", "policies": ["p1"]}, 400, "either 'policy'"),
        ("POST", "/v1/resync", {"policies": ["p1", 3]}, 400, "list of policy ids"),
        ("POST", "/v1/resync", {"policies": ["p1"], "page_size": 0}, 422, "page size"),
        ("POST", "/v1/resync", {"policies": ["p1", "nope"]}, 404, "no policy with id 'nope'"),
        ("POST", "/v1/resync", {"policy": "p1", "pages": 1}, 400, "unknown field 'pages'"),
        ("POST", "/v1/resync/cancel", {}, 400, "'policies' is required"),
        ("POST", "/v1/resync/cancel", {"policies": ["p1"]}, 422, "no resync running"),
        ("DELETE", "/v1/resync/nope", None, 404, "no policy with id"),
        ("GET", "/v1/tasks?state=broken", None, 422, "unknown task state"),
        ("GET", "/v1/tasks?limit=many", None, 400, "'limit' must be a number"),
        ("GET", "/v1/tasks?limit=0", None, 422, "limit must be between"),
        ("GET", "/v1/tasks?policy=nope", None, 404, "no policy with id"),
        ("GET", "/v1/history?since=yesterday", None, 400, "'since' must be a number"),
        ("GET", "/v1/tasks?cause_policy=p1&cause_op=put", None, 400, "a cause needs"),
        ("GET", "/v1/tasks?" + CAUSE.replace("op=put", "op=copy"), None, 400, "unknown operation"),
        ("GET", "/v1/failures?by=colour", None, 400, "'by' must be cause"),
        ("GET", "/v1/failures?policy=nope", None, 404, "no policy with id"),
        ("GET", "/v1/explain?source=src/bucket-a", None, 400, "'key' are required"),
        ("GET", "/v1/explain?source=nobucket&key=k", None, 422, "expected ALIAS/BUCKET"),
        ("GET", "/v1/explain?source=ghost/bucket-a&key=k", None, 422, "unknown alias 'ghost'"),
        ("POST", "/v1/pause", {"policy": 3}, 400, "'policy' must be a str"),
        ("POST", "/v1/pause", {"policy": "nope"}, 404, "no policy with id"),
        ("POST", "/v1/retry", {}, 400, "either 'ids' or 'all'"),
        ("POST", "/v1/retry", {"ids": [1], "all": True}, 400, "either 'ids' or 'all'"),
        ("POST", "/v1/retry", {"ids": ["1"]}, 400, "list of task ids"),
        ("POST", "/v1/retry", {"ids": [424242]}, 422, "no failed or retrying task with id 424242"),
        ("POST", "/v1/events/minio", {"nope": 1}, 422, "Records"),
        ("POST", "/v1/events/minio", {"Records": [{"eventName": "x"}]}, 422, "record 0"),
        ("GET", "/v1/nothing", None, 404, "no such endpoint"),
        ("PUT", "/v1/status", None, 405, "not allowed"),
    ],
)
async def test_malformed_input_gets_a_message_and_changes_nothing(
    app_client: tuple[httpx.AsyncClient, LocalService],
    method: str,
    path: str,
    body: Any,
    status: int,
    message: str,
) -> None:
    client, service = app_client
    before = [p.public() for p in await service.policies()]
    raw = body if isinstance(body, bytes) else None
    resp = await client.request(method, path, content=raw, json=None if raw else body)
    assert resp.status_code == status, resp.text
    assert message in resp.json()["error"]
    if status != 405:  # a route's method, not one of our errors
        assert BY_KIND[resp.json()["kind"]].status == status
    assert "Traceback" not in resp.text and SECRET not in resp.text
    assert [p.public() for p in await service.policies()] == before
    assert await service.audit() == [] and await service.resyncs() == []


async def test_tasks_page_through_failures_with_a_cursor(
    app_client: tuple[httpx.AsyncClient, LocalService],
) -> None:
    client, service = app_client
    queue = service.queue
    await queue.enqueue([NewTask("p1", f"logs/{i:03}", "v1", Op.PUT, size=i) for i in range(50)])
    claimed = await queue.claim(["p1"], 50, 60)
    failing = claimed[::3]
    for task in failing:
        await queue.fail(task, f"PUT {task.key}: AccessDenied", "permanent")
    seen: list[int] = []
    after: int | None = 0
    while after is not None:
        resp = await client.get("/v1/tasks", params={"state": "failed", "limit": 7, "after": after})
        page = resp.json()
        assert len(page["tasks"]) <= 7
        seen += [t["id"] for t in page["tasks"]]
        after = page["next"]
    assert seen == sorted(t.id for t in failing)
    one = (await client.get("/v1/tasks", params={"state": "failed", "limit": 1})).json()["tasks"][0]
    assert one["state"] == "failed" and one["error_class"] == "permanent"
    assert one["last_error"].endswith("AccessDenied")


async def test_failures_group_by_cause_and_a_cause_pages_its_tasks(
    app_client: tuple[httpx.AsyncClient, LocalService],
) -> None:
    client, service = app_client
    queue = service.queue
    await queue.enqueue([NewTask("p1", f"logs/{i:03}", "v1", Op.PUT, size=2) for i in range(9)])
    for n, task in enumerate(await queue.claim(["p1"], 9, 60)):
        code = "AccessDenied" if n % 3 else "NoSuchBucket"
        await queue.fail(task, f"PUT {task.key}: {code}", "permanent", code)
    groups = (await client.get("/v1/failures", params={"by": "reason"})).json()["groups"]
    assert [(g["cause"]["code"], g["count"], g["bytes"]) for g in groups] == [
        ("AccessDenied", 6, 12),
        ("NoSuchBucket", 3, 6),
    ]
    app = httpx.ASGITransport(app=create_app(service, TOKEN))
    remote = RemoteService("http://api", TOKEN, transport=app)
    assert await remote.failure_groups() == await service.failure_groups()
    (denied, _) = await remote.failure_groups()
    page = await remote.tasks(cause=denied.cause, limit=4)
    rest = await remote.tasks(cause=denied.cause, limit=4, after=page.next or 0)
    assert [t.error_code for t in page.tasks + rest.tasks] == ["AccessDenied"] * 6
    assert rest.next is None
    await remote.close()


async def test_webhook_enqueues_once_per_record_even_when_posted_twice(
    app_client: tuple[httpx.AsyncClient, LocalService],
) -> None:
    client, service = app_client
    payload = {
        "EventName": "s3:ObjectCreated:Put",
        "Key": "bucket-a/logs/a b.txt",
        "Records": [
            minio_event("s3:ObjectCreated:Put", "bucket-a", "logs/a b.txt", "v1"),
            minio_event("s3:ObjectCreated:CompleteMultipartUpload", "bucket-a", "logs/c", "v7"),
            minio_event("s3:ObjectRemoved:DeleteMarkerCreated", "bucket-a", "logs/c", "dm1"),
            minio_event("s3:ObjectCreated:Put", "bucket-a", "other/not-in-prefix", "v1"),
            minio_event("s3:ObjectCreated:Put", "another-bucket", "logs/x", "v1"),
            minio_event("s3:ObjectRemoved:Delete", "bucket-a", "logs/never-copied", "v3"),
        ],
    }
    first = (await client.post("/v1/events/minio", json=payload)).json()
    second = (await client.post("/v1/events/minio", json=payload)).json()
    assert first == {"records": 6, "enqueued": 3}
    assert second == {"records": 6, "enqueued": 0}
    tasks = (await service.tasks(limit=100)).tasks
    assert sorted((t.key, t.version_id, t.op.value) for t in tasks) == [
        ("logs/a b.txt", "v1", "put"),
        ("logs/c", "dm1", "delete-marker"),
        ("logs/c", "v7", "put"),
    ]
    other_alias = await client.post("/v1/events/minio?alias=elsewhere", json=payload)
    assert other_alias.json()["enqueued"] == 0


# -- end to end through a real `mirrorline run --listen` -----------------------------------


def queue_counts(state_dir: Path) -> dict[tuple[str, str], tuple[int, int]]:
    """Counted straight from the tasks table, not from the engine's counters."""
    with sqlite3.connect(f"file:{state_dir / 'mirrorline.db'}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT policy, state, COUNT(*), COALESCE(SUM(size), 0) FROM tasks GROUP BY 1, 2"
        ).fetchall()
    return {(p, s): (n, b) for p, s, n, b in rows}


def test_status_equals_an_independent_count_and_survives_a_restart(pair: Pair) -> None:
    pair.seed("ok/", 40, 2048)
    pair.add_policy()
    broken = f"{pair.dst_bucket}-gone"
    make_bucket(pair.dst, broken)
    pair.ml(
        "replicate",
        "add",
        f"src/{pair.src_bucket}",
        "--remote-target",
        f"dst/{broken}",
        "--id",
        "p2",
        "--prefix",
        "ok/001",
    )
    pair.ml("replicate", "pause", "--id", "p2")
    api = start(pair)
    eventually(lambda: api.policy("p2")["backlog"]["pending"] == 10, 60)
    pair.dst.remove_bucket(broken)  # NoSuchBucket from now on: a permanent failure
    api.post("/v1/resume", {"policy": "p2"})
    eventually(lambda: api.policy("p2")["backlog"]["failed"] == 10, 60)
    eventually(lambda: api.policy("p1")["backlog"]["replicated"] == 40, 60)

    counted = queue_counts(pair.state_dir)
    replicas = len(list(pair.dst.list_objects(pair.dst_bucket, recursive=True)))
    before = {pid: api.policy(pid) for pid in ("p1", "p2")}
    assert before["p1"]["backlog"]["replicated"] == replicas == 40
    assert before["p1"]["backlog"]["replicated_bytes"] == 40 * 2048
    assert before["p1"]["sent_bytes_total"] == 40 * 2048
    assert (before["p2"]["backlog"]["failed"], before["p2"]["backlog"]["failed_bytes"]) == counted[
        ("p2", "failed")
    ]
    assert set(counted) == {("p2", "failed")}  # nothing else is queued anywhere
    for pid in ("p1", "p2"):
        backlog = before[pid]["backlog"]
        assert backlog["pending"] == backlog["in_flight"] == backlog["retrying"] == 0
    assert before["p2"]["errors"]["since_start"] == {"NoSuchBucket": 10}
    assert before["p1"]["latency"]["1h"]["all"]["count"] == 40
    assert before["p1"]["latency"]["1h"]["<1MiB"]["p99"] is not None
    target = next(t for t in api.get("/v1/status")["targets"] if t["alias"] == "dst")
    assert target["backlog"]["failed"] == 10 and target["backlog"]["replicated"] == 40
    assert target["online"] is True
    failed = api.get("/v1/tasks", state="failed", policy="p2", limit=1000)
    assert len(failed["tasks"]) == 10 and failed["next"] is None
    assert all("NoSuchBucket" in t["last_error"] for t in failed["tasks"])

    assert pair.stop_engine(api.proc) == 0
    stopped_at = time.time()
    api = start(pair)
    after = {pid: api.policy(pid) for pid in ("p1", "p2")}
    for pid in ("p1", "p2"):
        assert after[pid]["backlog"] == before[pid]["backlog"] | {"oldest_pending_age": 0.0}
        assert after[pid]["sent_bytes_total"] == before[pid]["sent_bytes_total"]
        assert after[pid]["errors"]["total"] == before[pid]["errors"]["since_start"]
        assert after[pid]["rate"]["peak_bytes"] >= before[pid]["rate"]["peak_bytes"]
    assert after["p2"]["errors"]["since_start"] == {}
    hist = [p for p in api.get("/v1/history", since=0, policy="p1") if p["at"] <= stopped_at]
    assert hist and hist[-1]["replicated"] == 40
    assert pair.stop_engine(api.proc) == 0


def test_driven_over_http_with_secrets_kept_out(pair: Pair) -> None:
    api = start(pair, "--scan-interval", "3600")
    created = api.post(
        "/v1/policies",
        {
            "source": f"src/{pair.src_bucket}",
            "target": f"dst/{pair.dst_bucket}",
            "id": "web",
            "replicate": ["delete-marker", "delete", "metadata-sync"],
            "bandwidth": "50MiB",
        },
    )
    assert created["id"] == "web" and created["bandwidth"] == 50 * 1024**2
    eventually(lambda: api.policy("web")["scans"] >= 1, 30)
    api.post("/v1/pause", {"policy": "web"})
    eventually(lambda: api.policy("web")["state"] == "paused", 10)

    # MinIO would post these; SeaweedFS has no webhooks, so the test posts what MinIO sends.
    versions = {key: pair.put(key, key.encode()) for key in ("a.txt", "dir/b c.txt", "c.txt")}
    records = [
        minio_event("s3:ObjectCreated:Put", pair.src_bucket, key, version, len(key))
        for key, version in versions.items()
    ]
    body = {"EventName": "s3:ObjectCreated:Put", "Records": records}
    assert api.post("/v1/events/minio", body) == {"records": 3, "enqueued": 3}
    assert api.post("/v1/events/minio", body) == {"records": 3, "enqueued": 0}
    eventually(lambda: api.policy("web")["backlog"]["pending"] == 3, 10)
    api.post("/v1/resume", {"policy": "web"})
    eventually(lambda: pair.target_latest() == {k: k.encode() for k in versions}, 60)

    pair.src.remove_object(pair.src_bucket, "c.txt")
    marker = next(
        v.version_id
        for v in pair.src.list_objects(pair.src_bucket, prefix="c.txt", include_version=True)
        if v.is_delete_marker
    )
    event = minio_event("s3:ObjectRemoved:DeleteMarkerCreated", pair.src_bucket, "c.txt", marker)
    assert api.post("/v1/events/minio", {"Records": [event]})["enqueued"] == 1
    eventually(lambda: "c.txt" not in pair.target_latest(), 60)

    # The snapshot is at most a second old: wait for it to show all four.
    eventually(lambda: api.policy("web")["backlog"]["replicated"] == 4, 10)
    metrics = api.get("/metrics")
    families = {f.name: f for f in text_string_to_metric_families(metrics)}
    status = api.policy("web")
    sent = next(
        s.value
        for s in families["mirrorline_replication_sent_bytes"].samples
        if s.labels["policy"] == "web" and s.name.endswith("_total")
    )
    assert sent == status["sent_bytes_total"] > 0
    buckets = [
        s
        for s in families["mirrorline_replication_latency_seconds"].samples
        if s.name.endswith("_count")
    ]
    # three copies and one delete marker
    assert sum(s.value for s in buckets) == status["latency"]["1h"]["all"]["count"] == 4
    online = families["mirrorline_replication_link_online"].samples
    assert {s.labels["target"]: s.value for s in online} == {"src": 1.0, "dst": 1.0}
    assert families["mirrorline_replication_bandwidth_limit_bytes"].samples[0].value == 50 * 1024**2

    audit = api.get("/v1/audit")
    assert [(a["action"], a["actor"]) for a in reversed(audit)] == [
        ("alias", "cli"),  # the fixture's `alias set src` and `alias set dst`
        ("alias", "cli"),
        ("add-policy", "api"),
        ("pause", "api"),
        ("resume", "api"),
    ]
    for path in ("/v1/policies", "/v1/transfers", "/v1/tasks", "/v1/history"):
        api.get(path)
    resp = api.http.delete("/v1/policies/web")
    assert resp.json() == {"removed": "web"}
    assert pair.stop_engine(api.proc) == 0

    secrets = [pair.source.secret_key, pair.target.secret_key, api.token]
    for text in [*api.seen, pair.engine_log()]:
        for secret in secrets:
            assert secret not in text


def test_cli_connects_to_a_remote_engine(pair: Pair) -> None:
    pair.add_policy()
    api = start(pair)
    remote = ("--connect", api.url, "--token", api.token)
    eventually(lambda: api.policy("p1")["scans"] >= 1, 30)
    out = pair.ml("replicate", "pause", "--id", "p1", *remote).stdout
    assert "paused for policy p1" in out
    assert api.policy("p1")["state"] == "paused"
    pair.put("held.txt", b"held")
    eventually(lambda: api.policy("p1")["backlog"]["pending"] == 1, 30)
    report = json.loads(pair.ml("replicate", "status", "--json", *remote).stdout)
    (row,) = report["policies"]
    assert (row["state"], row["pending"], row["target_online"]) == ("paused", 1, True)
    backlog = json.loads(
        pair.ml("replicate", "backlog", f"src/{pair.src_bucket}", "--json", *remote).stdout
    )
    assert [t["key"] for t in backlog] == ["held.txt"]
    pair.ml("replicate", "resume", "--id", "p1", *remote, env={"MIRRORLINE_TOKEN": ""})
    eventually(lambda: pair.target_latest() == {"held.txt": b"held"}, 60)
    audit = api.get("/v1/audit")
    assert [(a["action"], a["actor"]) for a in reversed(audit)] == [
        ("alias", "cli"),
        ("alias", "cli"),
        ("add-policy", "cli"),
        ("pause", "api"),
        ("resume", "api"),
    ]

    for args, token, message in [
        (("--connect", api.url), "wrong-token-abcdefghijkl", "refused the token"),
        (("--connect", "http://127.0.0.1:9"), "t" * 20, "cannot reach the engine"),
        (("--connect", api.url), "", "needs a token"),
        (("--connect", "ftp://x"), "", "expected http://HOST:PORT"),
    ]:
        env = {"MIRRORLINE_TOKEN": token}  # on argv it would add a warning line
        result = pair.ml("replicate", "status", *args, check=False, env=env)
        assert result.returncode == 1
        assert result.stderr.strip().startswith("mirrorline: error:")
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    api.proc.send_signal(signal.SIGTERM)
    assert api.proc.wait(60) == 0


async def test_resync_endpoints_start_list_and_cancel(
    app_client: tuple[httpx.AsyncClient, LocalService],
) -> None:
    client, service = app_client
    started = await client.post("/v1/resync", json={"policy": "p1"})
    assert started.status_code == 201 and started.json()["state"] == "running"
    again = await client.post("/v1/resync", json={"policy": "p1"})
    assert again.status_code == 422 and "already" in again.json()["error"]
    listed = (await client.get("/v1/resync")).json()
    assert [(r["policy"], r["state"]) for r in listed] == [("p1", "running")]
    assert (await client.delete("/v1/resync/p1")).json() == {"cancelled": "p1"}
    assert (await client.get("/v1/resync")).json()[0]["state"] == "cancelled"
    gone = await client.delete("/v1/resync/p1")
    assert gone.status_code == 422 and "no resync running" in gone.json()["error"]
    assert (await client.post("/v1/resync", json={})).status_code == 400
    assert (await client.post("/v1/resync", json={"policy": "nope"})).status_code == 404
    assert [a.action for a in reversed(await service.audit())] == ["resync", "cancel-resync"]


# -- RemoteService: the same values and the same error classes as in process ---------------


@pytest.fixture
async def remote(app_client: tuple[httpx.AsyncClient, LocalService]) -> AsyncIterator[Service]:
    _, service = app_client
    transport = httpx.ASGITransport(app=create_app(service, TOKEN))
    client = RemoteService("http://api", TOKEN, transport=transport)
    yield client
    await client.close()


async def test_a_request_after_close_is_a_retryable_error_not_a_crash(remote: Service) -> None:
    """A console's last poll can race its own quit (it closes the service, then exits):
    httpx's RuntimeError there failed the poll's worker, a traceback on the way out."""
    assert (await remote.status()).policies
    await remote.close()
    with pytest.raises(TransientError, match=r"^closed: no more requests"):
        await remote.status()


async def test_remote_errors_come_back_as_the_class_raised_in_the_engine(
    app_client: tuple[httpx.AsyncClient, LocalService], remote: Service
) -> None:
    _, service = app_client
    service.book.set(Alias("dst", "http://127.0.0.1:1", "key", SECRET))
    for side in (service, remote):
        with pytest.raises(MissingError, match="no policy with id 'nope'"):
            await side.policy("nope")
        with pytest.raises(MissingError, match="unknown alias 'ghost'"):
            await side.remove_alias("ghost")
        with pytest.raises(UserError, match="used by policy p1") as used:
            await side.remove_alias("src")
        assert type(used.value) is UserError
        # alias src points at a closed port: the listing fails, retryably, on both sides
        with pytest.raises(TransientError, match=r"^diff p1: ") as down:
            await side.diff("p1")
        assert down.value.retryable
        with pytest.raises(TransientError, match=r"^verify p1: "):
            await side.verify("p1", sample=1)
    assert await service.audit() == []


def test_an_error_from_another_server_is_classed_by_its_status() -> None:
    def error(status: int, data: Any) -> MirrorlineError:
        return error_of(status, data, "the engine at http://x")

    assert type(error(503, None)) is TransientError
    assert error(502, None).reason == "the engine at http://x answered HTTP 502"
    assert type(error(502, {"error": "bad gateway"})) is TransientError
    assert type(error(500, {})) is MirrorlineError
    assert type(error(404, {"error": "gone"})) is MissingError
    assert type(error(400, [])) is MalformedError
    assert type(error(409, {"error": "conflict"})) is UserError
    assert error(404, {"error": "gone", "kind": "not-found"}).reason == "gone"
    assert type(error(404, {"error": "gone", "kind": "not-found"})) is NotFoundError


def test_each_error_class_has_its_own_kind() -> None:
    def family(cls: type[MirrorlineError]) -> set[type[MirrorlineError]]:
        return {cls}.union(*(family(sub) for sub in cls.__subclasses__()))

    # Every class of engine.errors that names a kind of its own comes back by that kind.
    own = {c for c in family(MirrorlineError) if c.__module__ == "engine.errors"}
    assert set(BY_KIND.values()) == {c for c in own if "kind" in vars(c)}
    assert all(cls.kind == kind for kind, cls in BY_KIND.items())
    assert BY_KIND["retryable"].retryable and not BY_KIND["user"].retryable


async def test_remote_resyncs_start_all_or_none_and_are_audited_as_api(
    app_client: tuple[httpx.AsyncClient, LocalService], remote: Service
) -> None:
    _, service = app_client
    await service.store.add(Policy("p2", 2, "src", "bucket-a", "dst", "bucket-c"))
    (first,) = await remote.start_resync("p2", page_size=10)
    assert (first["policy"], first["state"], first["page_size"]) == ("p2", "running", 10)
    with pytest.raises(UserError, match="policy p2 is already running"):
        await remote.start_resync("p1", "p2")
    assert [r["policy"] for r in await remote.resyncs()] == ["p2"]  # p1 did not start
    both = await remote.start_resync("p1")
    assert await remote.cancel_resync("p1", "p2") == sorted([first["id"], both[0]["id"]])
    with pytest.raises(UserError, match="no resync running for policy p1, p2"):
        await remote.cancel_resync("p1", "p2")
    assert [(a.action, a.actor) for a in reversed(await remote.audit())] == [
        ("resync", "api"),
        ("resync", "api"),
        ("cancel-resync", "api"),
    ]
