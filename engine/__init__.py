"""mirrorline's replication engine: asynchronous bucket replication between S3 stores.

The packages are the diagram, read left to right::

    s3/ ──► replication/ ──► state/            the data path and what it keeps
    (stores)  detector ─► queue ◄─ dispatcher ─► transfer
                   ▲         │
    telemetry/ ◄───┴─────────┘                 numbers counted on the way, one Snapshot
    service/   what an operator's tool may ask: local, embedded, over HTTP (+ webhook)
    cli/       `mirrorline`, every command through service/
    checks/    look at both stores, trusting no local state (diff, verify)
    demo/      a lab of real parts: two stores, a fault proxy, a workload

`engine.py` composes one process (the Engine): `endpoints.py` holds its clients,
one per alias, and `configure.py` turns aliases and policies into its routes
while it runs. `config.py`, `policy.py`,
`model.py`, `errors.py` and `aliases.py` are the nouns everything shares. The
console (`tui/`) sees only `engine.service` and the snapshot.

The names below are the public surface; the heavy ones (the Engine, the state
backends) load on first use, so `import engine` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

from engine.config import EngineConfig
from engine.errors import MirrorlineError, NotFoundError, PermanentError, TransientError, UserError
from engine.policy import Policy
from engine.service import PolicySpec, Service
from engine.telemetry.snapshot import Snapshot

_LAZY = {
    "EmbeddedEngine": "engine.service.embedded",
    "Engine": "engine.engine",
    "LocalService": "engine.service.local",
    "RemoteService": "engine.service.remote",
    "open_state": "engine.state",
}

__all__ = [
    "EmbeddedEngine",
    "Engine",
    "EngineConfig",
    "LocalService",
    "MirrorlineError",
    "NotFoundError",
    "PermanentError",
    "Policy",
    "PolicySpec",
    "RemoteService",
    "Service",
    "Snapshot",
    "TransientError",
    "UserError",
    "open_state",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
