"""Everything the demo runs beside its engine, set up and torn down as one.

The console demo and the headless one share this: the lab's stores and proxy come
up, the API socket is bound (so the workload can post webhook events to it and
`mirrorline tui` in another terminal finds it), and the session is ready to be
attached to the engine. Leaving the block stops the stores whatever happened.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from engine.config import EngineConfig, api_token, ensure
from engine.demo.lab import Lab
from engine.demo.remote import demo_routes
from engine.demo.session import DemoSession
from engine.engine import Attachment
from engine.service.server import attach_api, listen_socket, url_of


@dataclass(frozen=True)
class Stage:
    lab: Lab
    session: DemoSession
    api: str  # the engine's API, on loopback
    attachments: list[Attachment]


def demo_config(root: Path) -> EngineConfig:
    """Short intervals so a newcomer sees changes within seconds, not minutes."""
    return EngineConfig(state_dir=root, scan_interval=2.0, probe_interval=1.0, tag_sweep_rate=200)


@asynccontextmanager
async def staged(
    root: Path, rate: float, seed: int = 1, events: bool = False, clean: bool = False
) -> AsyncIterator[Stage]:
    lab = await Lab.start(ensure(root), clean)
    try:
        token = api_token(root / "api-token")
        sock = listen_socket("127.0.0.1:0")
        api = url_of(sock)
        session = DemoSession(lab, rate, seed, events, api=api, token=token)
        attachments = [attach_api(sock, token, extra=demo_routes(session)), session.run]
        yield Stage(lab, session, api, attachments)
    finally:
        await lab.stop()
