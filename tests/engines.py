"""A real engine behind its HTTP API, as a script or MinIO would reach it (shared by tests)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

import httpx

from tests.conftest import Pair, eventually

T = TypeVar("T")


def minio_event(name: str, bucket: str, key: str, version: str, size: int = 1) -> dict[str, Any]:
    """One record as MinIO's notify_webhook sends it (keys URL-encoded, as S3 events do)."""
    return {
        "eventVersion": "2.0",
        "eventSource": "minio:s3",
        "eventTime": "2026-11-25T07:00:00.000Z",
        "eventName": name,
        "s3": {
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": {
                "key": key.replace(" ", "+"),
                "size": size,
                "eTag": "0123456789abcdef0123456789abcdef",
                "versionId": version,
                "sequencer": "17A0B0C0D0E0F000",
            },
        },
    }


# -- in process --------------------------------------------------------------------------


class Api:
    """A running engine's API as a script would use it."""

    def __init__(self, pair: Pair, proc: subprocess.Popen[bytes]) -> None:
        self.pair = pair
        self.proc = proc
        log = pair.log_dir / f"engine-{len(pair.engines) - 1}.log"
        line = eventually(lambda: re.search(r"API on (http://\S+)", log.read_text()), 30)
        self.url = line.group(1)
        self.token = (pair.state_dir / "api-token").read_text().strip()
        self.http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30
        )
        self.seen: list[str] = []  # every response body, for the secrets check

    def get(self, path: str, **params: Any) -> Any:
        resp = self.http.get(path, params=params)
        self.seen.append(resp.text)
        assert resp.status_code == 200, resp.text
        return resp.json() if path != "/metrics" else resp.text

    def post(self, path: str, body: Any) -> Any:
        resp = self.http.post(path, json=body)
        self.seen.append(resp.text)
        assert resp.status_code in (200, 201), resp.text
        return resp.json()

    def policy(self, policy_id: str) -> dict[str, Any]:
        (found,) = [p for p in self.get("/v1/status")["policies"] if p["id"] == policy_id]
        return found


def start(pair: Pair, *options: str) -> Api:
    return Api(pair, pair.start_engine("--listen", "127.0.0.1:0", *options))


class LoopThread:
    """An event loop in a thread: the proxy and the workload keep running while the test's
    own thread blocks in `eventually` and in CLI calls."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], T]) -> T:
        async def in_loop() -> T:
            return fn()

        return self.run(in_loop())

    def spawn(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()
