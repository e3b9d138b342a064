"""A webhook event wakes the dispatchers of the policies it queued for, and nothing more.

Before, each batch made the engine reload its whole configuration (every policy,
the aliases file, each policy's same-bucket check) to the same end. Here the
engine's periodic reload and scan are an hour apart, so a reload in the test's
window can only come from the event, and the copy can only come from the event.
"""

from __future__ import annotations

import asyncio

import httpx

from engine.config import EngineConfig
from engine.engine import Engine
from engine.service.server import attach_api, listen_socket, url_of
from tests.conftest import Pair, until
from tests.engines import minio_event

TOKEN = "event-wake-token"
HOUR = 3600.0


async def test_an_event_copy_lands_without_a_configuration_reload(pair: Pair) -> None:
    pair.add_policy()
    sock = listen_socket("127.0.0.1:0")
    config = EngineConfig(
        state_dir=pair.state_dir, workers=2, scan_interval=HOUR, reload_interval=HOUR
    )
    engine = Engine(config, [attach_api(sock, TOKEN)])
    running = asyncio.create_task(engine.run())
    try:
        # the first full scan is over (it found an empty bucket): the next is an hour away
        await until(lambda: engine.snapshot and engine.snapshot.policies[0].scans >= 1, 60)
        reloads = engine.reloads
        version = await asyncio.to_thread(pair.put, "by-event.txt", b"sent by a webhook")
        event = minio_event("s3:ObjectCreated:Put", pair.src_bucket, "by-event.txt", version, 17)
        async with httpx.AsyncClient(
            base_url=url_of(sock), headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        ) as api:
            answer = await api.post("/v1/events/minio", json={"Records": [event]})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"records": 1, "enqueued": 1}

        async def landed() -> bool:
            return "by-event.txt" in await asyncio.to_thread(pair.target_latest)

        await until(landed, 60)
        assert (await asyncio.to_thread(pair.target_latest))["by-event.txt"] == b"sent by a webhook"
        assert engine.reloads == reloads, "the event reloaded the configuration"
    finally:
        engine.stop()
        await asyncio.wait_for(running, 60)
