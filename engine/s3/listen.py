"""MinIO bucket notifications as scan hints, read by a daemon thread.

A hint only: servers without the API (SeaweedFS answers 501, AWS has none)
report through `on_unsupported` and the periodic scan carries on alone. The
minio SDK that reads the stream costs 0.35-0.4 s of CPU to import: it is
imported in the thread, so a standing engine's event loop (copying by the time
a listener starts) never stalls for it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_plus

from engine.aliases import Alias
from engine.errors import MirrorlineError


def listen(
    alias: Alias,
    bucket: str,
    prefix: str,
    on_key: Callable[[str], None],
    on_unsupported: Callable[[str], None],
) -> Callable[[], None]:
    """Feed the object keys MinIO announces to `on_key`, from a daemon thread (the
    callbacks run there too). Returns a stopper."""
    stop = threading.Event()
    holder: dict[str, Any] = {}

    def run() -> None:
        try:
            from engine.s3.control import ControlClient, map_minio_errors

            with map_minio_errors(f"{alias.name}/{bucket}: listen"):
                control = ControlClient(alias, timeout=3600)
                if stop.is_set():  # stopped while the SDK was imported
                    return
                with control.notifications(bucket, prefix) as stream:
                    holder["stream"] = stream
                    if stop.is_set():  # stopped before the stream could be closed by it
                        return
                    for event in stream:
                        if stop.is_set():
                            return
                        for record in event.get("Records", []):
                            key = record.get("s3", {}).get("object", {}).get("key")
                            if key:
                                on_key(unquote_plus(key))
        except MirrorlineError as exc:
            if not stop.is_set():
                on_unsupported(f"{exc.code or exc.reason}: bucket notifications unavailable")
        except Exception as exc:  # noqa: BLE001 - a hint source must never take the engine down
            if not stop.is_set():
                on_unsupported(f"{type(exc).__name__}: bucket notifications unavailable")

    thread = threading.Thread(target=run, name=f"listen-{bucket}", daemon=True)
    thread.start()

    def stopper() -> None:
        stop.set()
        stream = holder.get("stream")
        if stream is not None:
            with contextlib.suppress(Exception):  # closing a dead stream may raise
                stream.close()

    return stopper
