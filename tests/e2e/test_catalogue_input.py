"""The bad-input catalogue (issue 11, input part): CLI, API and webhook.

Each case sends one thing a careless or hostile client could send and asserts
the answer (one `mirrorline: error:` line and its exit status, or the HTTP
status and its JSON error), that it came within DEADLINE, that nothing raw from
the input reached the terminal, and that the state is unchanged: for the CLI,
every file of the state dir byte for byte; for the API, whose engine writes its
telemetry every second, the files and the rows a request could change
(policies, tasks, replicas, attempts, audit, resyncs, the pause flag).
docs/reliability-input.md says what each case proves.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import os
import re
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.demo.seaweed import SeaweedServer
from tests.conftest import MIRRORLINE, Pair, eventually, new_pair
from tests.engines import minio_event

DEADLINE = 20.0  # seconds: every refusal is quick; this leaves room for a loaded machine
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x9b]")  # what must never reach a terminal raw
LIVE_TABLES = ("policies", "tasks", "replicas", "attempts", "audit", "resyncs")


# -- state ---------------------------------------------------------------------------------


def files_digest(state_dir: Path) -> dict[str, str]:
    """Every file of the state dir and its SHA-256: a refused command writes none of them."""
    return {
        str(p.relative_to(state_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(state_dir.rglob("*"))
        if p.is_file()
    }


def live_digest(state_dir: Path) -> tuple[dict[str, str], dict[str, list[tuple[object, ...]]]]:
    """What a request to a running engine could change: its config files and the rows of the
    tables it writes on request (the engine's own telemetry rows change every second)."""
    files = {
        name: hashlib.sha256((state_dir / name).read_bytes()).hexdigest()
        for name in ("aliases.json", "api-token")
    }
    uri = f"file:{state_dir / 'mirrorline.db'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
        rows = {t: db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in LIVE_TABLES}
        rows["settings"] = db.execute(
            "SELECT * FROM settings WHERE name != 'engine' ORDER BY 1"
        ).fetchall()
    return files, rows


# -- fixtures ------------------------------------------------------------------------------


class _Page(http.server.BaseHTTPRequestHandler):
    """A web server that is not S3: an HTML page for every GET."""

    def do_GET(self) -> None:
        body = b"<html><body><h1>Welcome</h1><p>not a bucket<br></body>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def web_page() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def localhost_alias(pair: Pair, name: str, server: SeaweedServer) -> None:
    """The source's server again, spelled `localhost` (keys on stdin, as scripts should)."""
    url = server.endpoint.replace("127.0.0.1", "localhost")
    result = subprocess.run(
        [*MIRRORLINE, "--state-dir", str(pair.state_dir), "alias", "set", name, url, "--stdin"],
        input=f"{server.access_key}\n{server.secret_key}\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr


@pytest.fixture(scope="module")
def cli_pair(
    servers: tuple[SeaweedServer, SeaweedServer], tmp_path_factory: pytest.TempPathFactory
) -> Pair:
    """A configured state dir with no engine: aliases src, dst, srclocal; policy p1."""
    root = tmp_path_factory.mktemp("catalogue-cli")
    pair = new_pair(servers, "catalogue-cli-src", "catalogue-cli-dst", root / "state")
    pair.add_policy()
    localhost_alias(pair, "srclocal", servers[0])
    (root / "binary-token").write_bytes(b"\x00\xff\x1b[2J" * 8)
    (root / "huge-token").write_bytes(b"t" * 10_000)
    return pair


class Engine:
    """One `mirrorline run --listen` for the module's API and webhook cases."""

    def __init__(self, pair: Pair) -> None:
        self.pair = pair
        self.proc = pair.start_engine("--listen", "127.0.0.1:0")
        log = pair.state_dir / "engine-0.log"
        found = eventually(lambda: re.search(r"API on (http://\S+)", log.read_text()), 60)
        self.url = found.group(1)
        self.token = (pair.state_dir / "api-token").read_text().strip()

    def send(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> httpx.Response:
        sent = {"Authorization": f"Bearer {self.token}", **headers}
        return httpx.request(method, self.url + path, content=body, headers=sent, timeout=30)


@pytest.fixture(scope="module")
def engine(
    servers: tuple[SeaweedServer, SeaweedServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    root = tmp_path_factory.mktemp("catalogue-api")
    pair = new_pair(servers, "catalogue-api-src", "catalogue-api-dst", root / "state")
    pair.add_policy()
    running = Engine(pair)
    eventually(lambda: running.send("GET", "/v1/status", None, {}).status_code == 200, 60)
    try:
        yield running
    finally:
        pair.stop_engine(running.proc)


# -- the CLI -------------------------------------------------------------------------------

SRC = "src/catalogue-cli-src"
ADD = ("replicate", "add", SRC, "--remote-target", "dst/catalogue-cli-dst", "--id", "p2")
ALIAS = ("alias", "set", "newone")
CLI_CASES: list[tuple[str, tuple[str | bytes, ...], str, int, str | None]] = [
    # (case, args, fragment of the one error line, exit status, stdin)
    (
        "same bucket, two spellings",
        ("replicate", "add", SRC, "--remote-target", "srclocal/catalogue-cli-src"),
        "same bucket",
        1,
        None,
    ),
    ("replicate nothing", (*ADD, "--replicate", ""), "name at least one", 1, None),
    ("replicate only commas", (*ADD, "--replicate", ","), "name at least one", 1, None),
    ("priority past 64 bits", (*ADD, "--priority", str(2**64)), "invalid --priority", 1, None),
    ("bandwidth absurd", (*ADD, "--bandwidth", "5000TiB"), "above 1 TiB/s", 1, None),
    ("prefix with escape", (*ADD, "--prefix", "logs/\x1b[2J"), "control characters", 1, None),
    ("prefix not UTF-8", (*ADD, "--prefix", b"logs/\xff\xfe"), "not valid utf-8", 1, None),
    ("tags with a bell", (*ADD, "--tags", "team=a\x07"), "control characters", 1, None),
    ("tags not UTF-8", (*ADD, "--tags", b"team=\xc3"), "not valid utf-8", 1, None),
    ("id with a newline", (*ADD[:-1], "p2\n"), "invalid --id", 1, None),
    ("retry id past 64 bits", ("replicate", "retry", str(2**63)), "invalid task id", 1, None),
    ("path with an escape", ("replicate", "ls", "src/\x1b[2Jx"), "invalid bucket name", 1, None),
    (
        "unknown id with escapes",
        ("replicate", "backlog", SRC, "--id", "\x1b[31mred"),
        "no policy with id",
        1,
        None,
    ),
    (
        "alias: not an S3 endpoint",
        (*ALIAS, "{web}", "--stdin"),
        "is not an s3 endpoint",
        1,
        "ak\nsk-secret-1\n",
    ),
    ("alias: --stdin one line", (*ALIAS, "{web}", "--stdin"), "expected two lines", 1, "ak\n"),
    ("alias: no keys, no terminal", (*ALIAS, "{web}"), "no terminal to ask", 1, ""),
    (
        "alias: secret with escape",
        (*ALIAS, "{web}", "--stdin"),
        "printable ascii",
        1,
        "ak\nsk\x1b[2J\n",
    ),
    (
        "run: binary token file",
        ("run", "--listen", "127.0.0.1:0", "--token-file", "{root}/binary-token"),
        "visible ascii",
        1,
        None,
    ),
    (
        "run: huge token file",
        ("run", "--listen", "127.0.0.1:0", "--token-file", "{root}/huge-token"),
        "over 4096 bytes",
        1,
        None,
    ),
    (
        "tui: binary token file",
        ("tui", "--connect", "http://127.0.0.1:9", "--token-file", "{root}/binary-token"),
        "visible ascii",
        1,
        None,
    ),
]


def cli(pair: Pair, args: tuple[str | bytes, ...], stdin: str | None) -> tuple[int, str, str]:
    """The real CLI, with bytes kept as bytes (argv that is not UTF-8), never on a terminal."""
    argv = [os.fsencode(a) for a in (*MIRRORLINE, "--state-dir", str(pair.state_dir))]
    argv += [a if isinstance(a, bytes) else os.fsencode(a) for a in args]
    result = subprocess.run(
        argv,
        input=(stdin or "").encode(),
        capture_output=True,
        timeout=DEADLINE * 3,
        env={**os.environ, "MIRRORLINE_TOKEN": ""},
    )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


@pytest.mark.parametrize(
    ("args", "fragment", "code", "stdin"),
    [case[1:] for case in CLI_CASES],
    ids=[case[0] for case in CLI_CASES],
)
def test_cli_refuses_with_one_line_and_changes_nothing(
    cli_pair: Pair,
    web_page: str,
    args: tuple[str | bytes, ...],
    fragment: str,
    code: int,
    stdin: str | None,
) -> None:
    root = str(cli_pair.state_dir.parent)
    args = tuple(a.format(web=web_page, root=root) if isinstance(a, str) else a for a in args)
    before = files_digest(cli_pair.state_dir)
    started = time.monotonic()
    status, out, err = cli(cli_pair, args, stdin)
    assert time.monotonic() - started < DEADLINE
    assert "Traceback" not in err, err
    assert status == code, (status, out, err)
    errors = [line for line in err.splitlines() if not line.startswith("mirrorline: warning: ")]
    assert len(errors) == 1 and errors[0].startswith("mirrorline: error: "), err
    assert fragment.lower() in errors[0].lower(), errors[0]
    assert out == ""
    assert not CONTROL.search(err), repr(err)  # the input's escapes came back escaped
    assert files_digest(cli_pair.state_dir) == before


# -- the API and the webhook ---------------------------------------------------------------


def as_json(value: Any) -> bytes:
    return json.dumps(value).encode()


def webhook(*records: Any) -> bytes:
    return as_json({"EventName": "s3:ObjectCreated:Put", "Records": list(records)})


def record(**changes: Any) -> dict[str, Any]:
    event = minio_event("s3:ObjectCreated:Put", "catalogue-api-src", "k.txt", "v1")
    event["s3"]["object"].update(changes)
    return event


POLICY = {"source": "src/catalogue-api-src", "target": "dst/catalogue-api-dst", "id": "p2"}
EVENTS = "/v1/events/minio"
API_CASES: list[tuple[str, str, str, bytes | None, dict[str, str], int, str]] = [
    # (case, method, path, body, extra headers, status, fragment of the error)
    ("body over 64 KiB", "POST", "/v1/policies", b" " * (65 * 1024), {}, 413, "over 64 KiB"),
    (
        "JSON nested past recursion",
        "POST",
        "/v1/policies",
        b"[" * 60_000,
        {},
        400,
        "not valid JSON",
    ),
    ("not JSON", "POST", "/v1/policies", b"\xff\xfe{", {}, 400, "not valid JSON"),
    (
        "priority past 64 bits",
        "POST",
        "/v1/policies",
        as_json({**POLICY, "priority": 2**70}),
        {},
        422,
        "invalid --priority",
    ),
    (
        "priority as a float",
        "POST",
        "/v1/policies",
        as_json({**POLICY, "priority": 1e400}),
        {},
        400,
        "'priority' must be a int",
    ),
    (
        "replicate an empty list",
        "POST",
        "/v1/policies",
        as_json({**POLICY, "replicate": []}),
        {},
        422,
        "name at least one",
    ),
    (
        "prefix with an escape",
        "POST",
        "/v1/policies",
        as_json({**POLICY, "prefix": "a\x1b[2J"}),
        {},
        422,
        "control characters",
    ),
    (
        "tags with a lone surrogate",
        "POST",
        "/v1/policies",
        b'{"source": "src/catalogue-api-src", "target": "dst/catalogue-api-dst", "tags": "k=\\udc80"}',
        {},
        422,
        "not valid UTF-8",
    ),
    (
        "bandwidth absurd",
        "POST",
        "/v1/policies",
        as_json({**POLICY, "bandwidth": "9PiB"}),
        {},
        422,
        "invalid bandwidth",
    ),
    (
        "retry id past 64 bits",
        "POST",
        "/v1/retry",
        as_json({"ids": [2**63]}),
        {},
        422,
        "invalid task id",
    ),
    ("retry id negative", "POST", "/v1/retry", as_json({"ids": [-4]}), {}, 422, "invalid task id"),
    ("cursor past 64 bits", "GET", f"/v1/tasks?after={2**64}", None, {}, 422, "invalid cursor"),
    ("limit zero", "GET", "/v1/tasks?limit=0", None, {}, 422, "limit must be between"),
    ("limit not a number", "GET", "/v1/tasks?limit=ten", None, {}, 400, "must be a number"),
    ("search with an escape", "GET", "/v1/tasks?q=%1B%5B2J", None, {}, 422, "control characters"),
    ("history since NaN", "GET", "/v1/history?since=nan", None, {}, 422, "invalid time"),
    ("history since -inf", "GET", "/v1/history?since=-inf", None, {}, 422, "invalid time"),
    (
        "attempts of id past 64 bits",
        "GET",
        f"/v1/tasks/{2**64}/attempts",
        None,
        {},
        422,
        "invalid task id",
    ),
    (
        "verify sample past 64 bits",
        "POST",
        "/v1/policies/p1/verify",
        as_json({"sample": 2**64}),
        {},
        422,
        "sample must be at least 1",
    ),
    (
        "resync page size zero",
        "POST",
        "/v1/resync",
        as_json({"policy": "p1", "page_size": 0}),
        {},
        422,
        "page size must be between",
    ),
    ("no token", "GET", "/v1/status", None, {"Authorization": ""}, 401, "missing Authorization"),
    (
        "wrong scheme",
        "GET",
        "/v1/status",
        None,
        {"Authorization": "Basic {token}"},
        401,
        "wrong token",
    ),
    (
        "token with a suffix",
        "GET",
        "/v1/status",
        None,
        {"Authorization": "Bearer {token}x"},
        401,
        "wrong token",
    ),
    ("webhook over 4 MiB", "POST", EVENTS, b" " * (4 * 1024 * 1024 + 1), {}, 413, "over 4096 KiB"),
    (
        "webhook without Records",
        "POST",
        EVENTS,
        as_json({"Records": "x"}),
        {},
        422,
        "'Records' list",
    ),
    ("webhook record not an object", "POST", EVENTS, webhook(7), {}, 422, "record 0"),
    ("webhook key not UTF-8", "POST", EVENTS, webhook(record(key="k%FF%FE")), {}, 422, "record 0"),
    ("webhook size negative", "POST", EVENTS, webhook(record(size=-1)), {}, 422, "'size'"),
    ("webhook size absurd", "POST", EVENTS, webhook(record(size=2**70)), {}, 422, "'size'"),
    ("webhook size a string", "POST", EVENTS, webhook(record(size="12")), {}, 422, "'size'"),
    (
        "webhook version with escapes",
        "POST",
        EVENTS,
        webhook(record(versionId="v\x1b[2J")),
        {},
        422,
        "'versionId'",
    ),
    ("webhook key too long", "POST", EVENTS, webhook(record(key="k" * 1025)), {}, 422, "'key'"),
    (
        "webhook bad time",
        "POST",
        EVENTS,
        webhook({**record(), "eventTime": "yesterday"}),
        {},
        422,
        "record 0",
    ),
    (
        "webhook one good, one bad",
        "POST",
        EVENTS,
        webhook(record(), record(size=-1)),
        {},
        422,
        "record 1",
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "fragment"),
    [case[1:] for case in API_CASES],
    ids=[case[0] for case in API_CASES],
)
def test_api_answers_4xx_with_a_reason_and_changes_nothing(
    engine: Engine,
    method: str,
    path: str,
    body: bytes | None,
    headers: dict[str, str],
    status: int,
    fragment: str,
) -> None:
    headers = {k: v.format(token=engine.token) for k, v in headers.items()}
    before = live_digest(engine.pair.state_dir)
    started = time.monotonic()
    resp = engine.send(method, path, body, headers)
    assert time.monotonic() - started < DEADLINE
    assert resp.status_code == status, (resp.status_code, resp.text)
    answer = resp.json()
    assert fragment.lower() in answer["error"].lower(), answer
    assert not CONTROL.search(resp.text), resp.text  # JSON escapes what it quotes
    assert live_digest(engine.pair.state_dir) == before
    assert engine.proc.poll() is None  # nothing a client sends takes the engine down


def test_bearer_scheme_is_case_insensitive(engine: Engine) -> None:
    """RFC 9110: `bearer` and `BEARER` are the same scheme (some webhook senders write it so)."""
    for scheme in ("bearer", "BEARER", "Bearer"):
        headers = {"Authorization": f"{scheme} {engine.token}"}
        assert engine.send("GET", "/v1/status", None, headers).status_code == 200, scheme


def test_a_declared_length_over_the_cap_is_refused_before_the_body(engine: Engine) -> None:
    """A client that announces 1 GB gets its 413 at once: the engine does not wait for, or
    buffer, a body it will refuse (the socket sends only the headers)."""
    before = live_digest(engine.pair.state_dir)
    host, port = engine.url.removeprefix("http://").rsplit(":", 1)
    request = (
        f"POST /v1/pause HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {engine.token}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n"
    )
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=DEADLINE) as sock:
        sock.sendall(request.encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    assert time.monotonic() - started < DEADLINE
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert live_digest(engine.pair.state_dir) == before
