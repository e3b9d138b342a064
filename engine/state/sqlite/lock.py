"""One running engine per state dir: a lock file that also says which process holds it."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from engine.config import ensure
from engine.errors import StateFileError, UserError


class EngineLock:
    """One running engine per state dir: a second one would double every copy."""

    def __init__(self, state_dir: Path) -> None:
        self.path = ensure(state_dir) / "engine.lock"
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        try:
            fh = open(self.path, "a+")  # noqa: SIM115 - held for the engine's lifetime
        except OSError as exc:
            raise StateFileError(f"{self.path}: cannot be opened ({exc.strerror})") from None
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            pid = self.holder()
            by = f" (pid {pid})" if pid else ""
            raise UserError(
                f"another engine{by} is already running on {self.path.parent}"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh

    def holder(self) -> int | None:
        """The pid of the engine holding the lock now, or None when none does."""
        try:
            fh = open(self.path)  # noqa: SIM115 - closed below
        except OSError:  # none yet, or not a file we can read: nobody holds it
            return None
        with fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                text = fh.read().strip()
                return int(text) if text.isdigit() else 0
            fcntl.flock(fh, fcntl.LOCK_UN)
            return None

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
