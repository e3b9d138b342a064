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
import stat
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from engine.errors import StateFileError, UserError
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
    """The state dir, created (0700) if missing; a file in its place is an error, said once."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except FileExistsError:
        raise StateFileError(f"{path} is a file, not a state directory") from None
    except OSError as exc:
        raise StateFileError(
            f"{path}: cannot create the state directory ({exc.strerror})"
        ) from None
    return path


def check_dir(path: Path) -> Path:
    """The state dir as it is (not created): something other than a directory there is an error."""
    if path.exists() and not path.is_dir():
        raise StateFileError(f"{path} is a file, not a state directory")
    return path


def write_private(path: Path, data: str) -> None:
    """Atomically replace `path` with `data`, readable by the owner only.

    A file its owner made read-only is refused, not replaced: renaming over it would
    succeed (the directory is writable) and silently undo the operator's choice."""
    ensure(path.parent)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        mode = stat.S_IWUSR | stat.S_IFREG
    except OSError as exc:
        raise StateFileError(f"{path}: cannot be written ({exc.strerror})") from None
    if stat.S_ISDIR(mode):
        raise StateFileError(f"{path} is a directory, so it cannot be written")
    if not mode & stat.S_IWUSR:
        raise StateFileError(f"{path} is read-only: make it writable to change it")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
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
    except OSError as exc:
        raise StateFileError(f"{path}: cannot be written ({exc.strerror})") from None


MAX_TOKEN = 4096  # bytes: a token file larger than this is not a token file


def api_token(path: Path) -> str:
    """The API token in `path`, created (random, 0600) on first use."""
    if not path.exists():
        write_private(path, secrets.token_urlsafe(32) + "\n")
    return read_token(path)


def read_token(path: Path) -> str:
    """The bearer token in `path`: one word of 16 to 4096 visible ASCII characters.

    It travels in an HTTP header, so anything else (UTF-8 beyond ASCII, a control
    character, a binary file named by mistake) could never match: said here, once."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_TOKEN + 1)
    except OSError as exc:
        raise UserError(f"cannot read the token file {path}: {exc.strerror}") from None
    if len(raw) > MAX_TOKEN:
        raise UserError(f"the token file {path} is over {MAX_TOKEN} bytes: not a token")
    token = raw.strip()
    if len(token) < 16 or not all(0x21 <= b <= 0x7E for b in token):
        raise UserError(
            f"the token in {path} must be one word of at least 16 visible ASCII characters"
        )
    return token.decode("ascii")


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
    # Sizes (engine/replication/streaming.py): up to stream_from an object is read whole;
    # up to multipart_from it is streamed in one PUT; larger, streamed in parts of part_size,
    # at most part_budget x part_size bytes of parts in flight across all transfers.
    stream_from: int = MiB
    multipart_from: int = 256 * MiB
    part_size: int = 8 * MiB
    part_budget: int = 16
    drain_grace: float = 30.0
    events: bool = True
    tag_sweep_rate: float = 50.0  # versions per second whose tags are compared (0: off)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    queue: str | None = None  # postgresql://...: a state several engines share (else state_dir)

    @property
    def state_address(self) -> str:
        return state_address(self.state_dir, self.queue)
