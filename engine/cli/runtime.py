"""How the `run` process runs its event loop: uvloop when installed, the GC out of the way.

Both are process-wide choices, so they belong to the command that owns the
process, not to the Engine (the console embeds an engine in its own loop).
Measured on the bulk copy (docs/benchmarks.md): uvloop cuts the engine's CPU
per object by several percent, and the collector's gen-0 passes over the
objects of start-up (modules, the click tree, aiohttp's tables) were about 6%
of the main thread.
"""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

# Gen-0 collections every 50,000 allocations rather than 700: the copy path allocates
# many short-lived objects that reference counting frees anyway; cycles are rare.
GC_THRESHOLD = (50_000, 20, 100)


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop if it is installed and not turned off (MIRRORLINE_LOOP=asyncio)."""
    if os.environ.get("MIRRORLINE_LOOP", "") == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop  # type: ignore[no-any-return]


def quiet_gc() -> None:
    """Freeze what start-up allocated (never collected again) and collect gen 0 less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


def run_engine_loop(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` on the fastest available loop, with the collector quietened."""
    quiet_gc()
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
