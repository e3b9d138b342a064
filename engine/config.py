"""Where mirrorline keeps its state, and how files holding secrets are written.

One directory holds everything (aliases.json, mirrorline.db, engine.lock):
`--state-dir`, else $MIRRORLINE_HOME, else $XDG_STATE_HOME/mirrorline
(~/.local/state/mirrorline). Secret-bearing files are written whole to a
temporary file created 0600 and renamed, so a crash never leaves half a file
and no other user can ever read one.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from engine.errors import UserError
from engine.retry import RetryPolicy

MiB = 1024 * 1024
DEFAULT_RESYNC_PAGE = 1000  # versions a resync lists, compares and checkpoints at a time


def resolve(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    if home := os.environ.get("MIRRORLINE_HOME"):
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME") or os.path.join(Path.home(), ".local", "state")
    return Path(xdg) / "mirrorline"


def ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def write_private(path: Path, data: str) -> None:
    """Atomically replace `path` with `data`, readable by the owner only."""
    ensure(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def api_token(path: Path) -> str:
    """The API token in `path`, created (random, 0600) on first use."""
    if not path.exists():
        write_private(path, secrets.token_urlsafe(32) + "\n")
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise UserError(f"cannot read the token file {path}: {exc.strerror}") from None
    if len(token) < 16 or any(c.isspace() for c in token):
        raise UserError(f"the token in {path} must be one word of at least 16 characters")
    return token


def public_address(url: str) -> str:
    """The address without its password or options, for messages and `State.where`."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    user = f"{parts.username}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit((parts.scheme, f"{user}{host}{port}", parts.path, "", ""))


def state_address(state_dir: Path, queue: str | None = None) -> str:
    """Where the state lives: the shared queue database if given, else the state dir's file."""
    return queue or str(state_dir / "mirrorline.db")


@dataclass
class EngineConfig:
    state_dir: Path
    workers: int = 32
    scan_interval: float = 5.0
    probe_interval: float = 2.0
    reload_interval: float = 1.0
    part_size: int = 8 * MiB  # objects up to this go in one PUT; larger in parts of it
    part_budget: int = 16  # multipart parts in memory at once, across all transfers
    drain_grace: float = 30.0
    events: bool = True
    tag_sweep_rate: float = 50.0  # versions per second whose tags are compared (0: off)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    queue: str | None = None  # postgresql://...: a state several engines share (else state_dir)

    @property
    def state_address(self) -> str:
        return state_address(self.state_dir, self.queue)
