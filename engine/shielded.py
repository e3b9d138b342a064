"""Let a write finish even when the coroutine waiting on it is cancelled.

`asyncio.shield` alone keeps the inner work running, but once its caller is
cancelled nobody reads the outcome: a failure there (a full state disk during a
shutdown) is printed by asyncio as "Task exception was never retrieved" with a
traceback, in a log that must carry one readable line per failure. Here the
cancelled caller waits for the work to end, and its outcome is always read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TypeVar

log = logging.getLogger("mirrorline.engine")

T = TypeVar("T")


async def shielded(work: Awaitable[T]) -> T:
    """Await `work`; if cancelled meanwhile, let it end first, then re-raise the cancel."""
    inner = asyncio.ensure_future(work)
    inner.add_done_callback(_read)
    try:
        return await asyncio.shield(inner)
    except asyncio.CancelledError:
        await asyncio.wait({inner})  # cancelled again here, `_read` still reads it
        raise


def _read(task: asyncio.Future[object]) -> None:
    """Read the outcome, so asyncio never reports it; a failure is the caller's to own."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.debug("shielded work failed: %s", exc)
