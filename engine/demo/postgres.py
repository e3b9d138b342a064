"""A throwaway PostgreSQL cluster (tests, benchmarks): initdb in a temporary dir, a free port.

`initdb` refuses to run as root (and CI runs as root), so under root the
cluster is created and run as the `postgres` user, in a directory it owns.
Each test gets its own schema (`search_path` in the address), which costs a
few milliseconds where a database would cost a hundred.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

BIN_DIRS = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/local/bin")
_schemas = itertools.count(1)


def pg_bin(name: str) -> str | None:
    for d in BIN_DIRS:
        if os.access(os.path.join(d, name), os.X_OK):
            return os.path.join(d, name)
    return shutil.which(name)


def missing() -> str | None:
    """Why no cluster can start here (None: it can)."""
    if not (pg_bin("pg_ctl") and pg_bin("initdb")):
        return "PostgreSQL's pg_ctl/initdb are not installed (apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` user to run initdb as"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="mirrorline-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._as: list[str] = []
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *command: str) -> None:
        subprocess.run(
            [*self._as, *command], check=True, capture_output=True, timeout=120, cwd=self.root
        )

    def start(self) -> PgCluster:
        self._run(
            str(pg_bin("initdb")), "-D", str(self.data), "-U", "postgres", "--auth=trust",
            "-E", "UTF8", "--locale=C",
        )  # fmt: skip
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            str(pg_bin("pg_ctl")), "-D", str(self.data), "-l", str(self.root / "pg.log"),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip
        return self

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def fresh_url(self, lease: float | None = None) -> str:
        """An address whose tables land in a new, empty schema."""
        schema = f"t{os.getpid()}_{next(_schemas)}"
        self.psql(f"CREATE SCHEMA {schema}")
        url = f"{self.url}?search_path={schema}"
        return url + (f"&lease={lease}" if lease else "")

    def psql(self, sql: str) -> str:
        psql = pg_bin("psql") or "psql"
        done = subprocess.run(
            [psql, "-X", "-q", "-At", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
             "-d", "postgres", "-c", sql],
            check=True, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        return done.stdout.strip()

    def stop(self) -> None:
        if self.data.exists():
            subprocess.run(
                [*self._as, str(pg_bin("pg_ctl")), "-D", str(self.data), "-m", "immediate", "stop"],
                capture_output=True,
                timeout=60,
                cwd=self.root,
            )
        shutil.rmtree(self.root, ignore_errors=True)
