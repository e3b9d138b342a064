"""The demo for the console: the engine on its thread, the lab and traffic on the same loop.

The console drives it through `Service` (like any embedded engine) and `DemoControl`
(the fault and traffic keys); both hop onto the engine's loop, so the console's own
loop never waits on a store, the proxy or the workload.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from engine.demo.control import DemoAction, DemoControl, DemoState
from engine.demo.stage import Stage, demo_config, staged
from engine.engine import Attachment
from engine.errors import MirrorlineError
from engine.service.embedded import EmbeddedEngine


class EmbeddedDemo(EmbeddedEngine, DemoControl):
    def __init__(
        self, root: Path, rate: float, seed: int = 1, events: bool = False, clean: bool = False
    ) -> None:
        super().__init__(demo_config(root), actor="console", lifespan=self._staged)
        self._options = (root, rate, seed, events, clean)
        self.stage: Stage | None = None

    @asynccontextmanager
    async def _staged(self) -> AsyncIterator[Sequence[Attachment]]:
        async with staged(*self._options) as stage:
            self.stage = stage
            yield stage.attachments

    async def demo_state(self) -> DemoState:
        return await self.submit(self._state())

    async def demo_act(self, action: DemoAction) -> DemoState:
        return await self.submit(self._act(action))

    async def _state(self) -> DemoState:
        if self.stage is None:
            raise MirrorlineError("the demo is still starting")
        return self.stage.session.state()

    async def _act(self, action: DemoAction) -> DemoState:
        if self.stage is None:
            raise MirrorlineError("the demo is still starting")
        return self.stage.session.act(action)
