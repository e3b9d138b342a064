"""Fixtures: two real SeaweedFS servers, fresh versioned buckets, the real CLI and engine."""

from __future__ import annotations

import asyncio
import inspect
import io
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from minio import Minio
from minio.error import S3Error
from minio.versioningconfig import ENABLED, VersioningConfig

from engine.aliases import Alias
from engine.demo.postgres import PgCluster, missing
from engine.demo.seaweed import SeaweedServer
from engine.model import Op
from engine.policy import Policy
from engine.replication.transfer import TransferContext, execute
from engine.s3.client import S3Client
from engine.state.sqlite.database import Database, open_db
from engine.state.sqlite.queue import SQLiteQueue

MIRRORLINE = [sys.executable, "-m", "engine.cli"]
_bucket_numbers = itertools.count(1)


# Matched against each test's whole fixture closure: the real-server `rig` below needs
# `pair`, so it is caught through it, and tests/replication's in-memory `rig` is not.
S3_FIXTURES = {"servers", "pair"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that asks for a real S3 server is marked `s3`: `-m "not s3"` is the fast layer."""
    for item in items:
        if S3_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.s3)


def eventually(check: Callable[[], Any], timeout: float = 60.0, interval: float = 0.1) -> Any:
    """Poll `check` until it returns a truthy value; fail with its last result at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except AssertionError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last result: {last!r}")


async def until(check: Callable[[], Any], seconds: float = 30.0) -> Any:
    """`eventually` for async tests: polls `check` (plain or async) without blocking the loop."""
    last: Any = None
    try:
        async with asyncio.timeout(seconds):
            while True:
                last = check()
                if inspect.isawaitable(last):
                    last = await last
                if last:
                    return last
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"condition not met within {seconds}s; last: {last!r}") from None


@pytest.fixture(scope="session")
def pg() -> Iterator[PgCluster]:
    """A PostgreSQL cluster for the session; tests take a schema each (`pg.fresh_url()`).

    Skipped where PostgreSQL is not installed, unless $MIRRORLINE_REQUIRE_PG is set
    (CI sets it: there, a skip would hide that the shared backend went untested).
    """
    reason = missing()
    if reason:
        if os.environ.get("MIRRORLINE_REQUIRE_PG"):
            pytest.fail(f"PostgreSQL is required here: {reason}")
        pytest.skip(reason)
    cluster = PgCluster().start()
    yield cluster
    cluster.stop()


def client_for(server: SeaweedServer) -> Minio:
    return Minio(
        server.endpoint.split("//")[1],
        server.access_key,
        server.secret_key,
        secure=False,
        region="us-east-1",
    )


@pytest.fixture(scope="session")
def servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[SeaweedServer, SeaweedServer]]:
    root = tmp_path_factory.mktemp("seaweed")
    source = SeaweedServer(root / "source", access_key="srcadmin", secret_key="src-secret-123")
    target = SeaweedServer(root / "target", access_key="dstadmin", secret_key="dst-secret-456")
    try:
        source.start()
        target.start()
        yield source, target
    finally:
        source.stop()
        target.stop()


@dataclass
class Pair:
    """A versioned source and target bucket, aliases `src` and `dst`, and a state dir."""

    source: SeaweedServer
    target: SeaweedServer
    src: Minio
    dst: Minio
    src_bucket: str
    dst_bucket: str
    state_dir: Path
    engines: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: Path | None = None  # where engine logs go (default: the state dir)

    @property
    def log_dir(self) -> Path:
        return self.logs or self.state_dir

    def ml(
        self, *args: str, check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the real `mirrorline` CLI against this pair's state dir."""
        result = subprocess.run(
            [*MIRRORLINE, "--state-dir", str(self.state_dir), *args],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, **(env or {})},
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"mirrorline {' '.join(args)} -> {result.returncode}: {result.stderr}"
            )
        return result

    def add_policy(self, *options: str) -> str:
        self.ml(
            "replicate",
            "add",
            f"src/{self.src_bucket}",
            "--remote-target",
            f"dst/{self.dst_bucket}",
            "--id",
            "p1",
            *options,
        )
        return "p1"

    def start_engine(self, *options: str) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"engine-{len(self.engines)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [
                *MIRRORLINE,
                "--state-dir",
                str(self.state_dir),
                "-v",
                "run",
                "--scan-interval",
                "0.5",
                "--workers",
                "8",
                *options,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.engines.append(proc)
        return proc

    def stop_engine(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def engine_log(self) -> str:
        return "\n".join(
            p.read_text(errors="replace") for p in sorted(self.log_dir.glob("engine-*.log"))
        )

    def put(self, key: str, data: bytes, **kwargs: Any) -> str:
        return self.src.put_object(
            self.src_bucket, key, io.BytesIO(data), len(data), **kwargs
        ).version_id

    def seed(self, prefix: str, count: int, size: int) -> None:
        """`count` random objects of `size` bytes under `prefix` on the source."""
        for i in range(count):
            self.put(f"{prefix}{i:04}", os.urandom(size))

    def target_latest(self) -> dict[str, bytes]:
        """Live objects on the target: key -> content."""
        return latest(self.dst, self.dst_bucket)

    def target_tags(self, key: str) -> dict[str, str] | None:
        """Tags of the target's latest version of `key`; None while it is not there."""
        try:
            return dict(self.dst.get_object_tags(self.dst_bucket, key) or {})
        except S3Error as exc:
            if exc.code == "NoSuchKey":
                return None
            raise

    def source_latest(self) -> dict[str, bytes]:
        return latest(self.src, self.src_bucket)

    def status(self, policy: str = "p1") -> dict[str, Any]:
        report = json.loads(self.ml("replicate", "status", "--json").stdout)
        (found,) = [p for p in report["policies"] if p["id"] == policy]
        return found

    def scans_after(self, policy: str, count: int) -> int:
        """Wait until the running engine has finished `count` more full scans of `policy`."""
        start = self.status(policy)["scans"]
        return eventually(lambda: self.status(policy)["scans"] >= start + count and start + count)


def latest(client: Minio, bucket: str) -> dict[str, bytes]:
    """Live objects: key -> content. A key deleted between list and get (the engine runs
    alongside) is left out, as the next call would leave it out too."""
    out = {}
    for obj in client.list_objects(bucket, recursive=True):
        try:
            out[obj.object_name] = client.get_object(bucket, obj.object_name).read()
        except S3Error as exc:
            if exc.code != "NoSuchKey":
                raise
    return out


def make_bucket(client: Minio, name: str, versioned: bool = True) -> str:
    client.make_bucket(name)
    if versioned:
        client.set_bucket_versioning(name, VersioningConfig(ENABLED))
    return name


def new_pair(
    servers: tuple[SeaweedServer, SeaweedServer], src_bucket: str, dst_bucket: str, state: Path
) -> Pair:
    """Make both buckets (versioned) and set aliases `src` and `dst` through the real CLI."""
    source, target = servers
    src, dst = client_for(source), client_for(target)
    p = Pair(
        source,
        target,
        src,
        dst,
        make_bucket(src, src_bucket),
        make_bucket(dst, dst_bucket),
        state,
    )
    p.ml("alias", "set", "src", source.endpoint, source.access_key, source.secret_key)
    p.ml("alias", "set", "dst", target.endpoint, target.access_key, target.secret_key)
    return p


@pytest.fixture
def pair(servers: tuple[SeaweedServer, SeaweedServer], tmp_path: Path) -> Iterator[Pair]:
    n = next(_bucket_numbers)
    p = new_pair(servers, f"src-{n}", f"dst-{n}", tmp_path / "state")
    try:
        yield p
    finally:
        for proc in p.engines:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@dataclass
class Rig:
    """One policy's engine parts in process (queue, clients, transfer context) on a pair.

    For tests that drive one step at a time (a scan, a claim) and choose what
    happens in between, against the real servers.
    """

    pair: Pair
    policy: Policy
    db: Database
    queue: SQLiteQueue
    source: S3Client
    target: S3Client
    ctx: TransferContext

    async def run_queued(self) -> list[Op]:
        """Carry out every queued task, as a dispatcher would; returns their ops in order."""
        ops: list[Op] = []
        while tasks := await self.queue.claim([self.policy.id], 100, 60):
            await self.queue.complete([await execute(task, self.ctx) for task in tasks])
            ops += [task.op for task in tasks]
        return ops

    def target_versions(self, key: str) -> list[str]:
        listed = self.pair.dst.list_objects(self.pair.dst_bucket, prefix=key, include_version=True)
        return [v.version_id for v in listed if v.object_name == key]


@pytest.fixture
async def rig(pair: Pair, tmp_path: Path) -> AsyncIterator[Rig]:
    def client(server: SeaweedServer, name: str) -> S3Client:
        alias = Alias(name, server.endpoint, server.access_key, server.secret_key)
        return S3Client.for_alias(alias)

    def origin(server: SeaweedServer, bucket: str) -> str:
        return f"{server.endpoint.split('//')[1]}/{bucket}"

    policy = Policy("p1", 1, "src", pair.src_bucket, "dst", pair.dst_bucket)  # replicates all
    source, target = client(pair.source, "src"), client(pair.target, "dst")
    ctx = TransferContext(
        policy,
        source,
        target,
        origin(pair.source, pair.src_bucket),
        origin(pair.target, pair.dst_bucket),
    )
    db = await open_db(tmp_path / "rig.db")
    queue = SQLiteQueue(db)
    try:
        yield Rig(pair, policy, db, queue, source, target, ctx)
    finally:
        await queue.close()
        await source.close()
        await target.close()
