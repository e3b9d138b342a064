"""Finding the engine that already runs on a state dir, so a console attaches to it.

An operator who SSHes into a box where `mirrorline run` is a service should get that
engine's console, not a second engine. The engine's lock says whether one runs (and
its pid); an engine serving the API also leaves its address (never the token) in
`STATE_DIR/engine.json`, and the token is in `STATE_DIR/api-token`, readable only by
the user the engine runs as.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from engine.config import write_private
from engine.state.sqlite import EngineLock

PRESENCE = "engine.json"


@dataclass(frozen=True)
class RunningEngine:
    pid: int
    url: str | None  # where its API listens; None when it runs without --listen


def announce(state_dir: Path, url: str) -> None:
    write_private(state_dir / PRESENCE, json.dumps({"pid": os.getpid(), "url": url}) + "\n")


def withdraw(state_dir: Path) -> None:
    path = state_dir / PRESENCE
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def running_engine(state_dir: Path) -> RunningEngine | None:
    pid = EngineLock(state_dir).holder() if state_dir.is_dir() else None
    if pid is None:
        return None
    try:
        presence = json.loads((state_dir / PRESENCE).read_text())
    except (OSError, ValueError):
        presence = {}
    url = presence.get("url") if isinstance(presence, dict) else None
    same = isinstance(presence, dict) and presence.get("pid") == pid
    return RunningEngine(pid, url if same and isinstance(url, str) else None)
