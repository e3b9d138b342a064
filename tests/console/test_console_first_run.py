"""First run: from an empty state dir to replicating, without leaving the console.

The console embeds the engine on an empty state dir, the operator adds an
endpoint for each of the two real SeaweedFS servers and a policy through the
forms, and an object written to the source arrives on the target.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
from pathlib import Path

from minio.error import S3Error
from textual.pilot import Pilot
from textual.widgets import Input, Label

from engine.config import EngineConfig
from engine.demo.seaweed import SeaweedServer
from engine.service import next_step
from engine.service.embedded import EmbeddedEngine
from tests.conftest import client_for, make_bucket
from tests.conftest import until as within
from tests.console.test_console import until
from tui.app import Console
from tui.screens.alias_form import AliasForm
from tui.screens.policy_form import PolicyForm

_numbers = itertools.count(1)


def hint(app: Console) -> str:
    label = app.screen.query_one("#first-run", Label)
    return str(label.content) if label.display else ""


async def fill(pilot: Pilot[None], *values: str) -> None:
    """Type each value into the next field of the open form, as an operator does."""
    for n, value in enumerate(values):
        if n:
            await pilot.press("tab")
        await pilot.press(*value)


async def add_endpoint(pilot: Pilot[None], name: str, server: SeaweedServer, secret: str) -> None:
    app = pilot.app
    await pilot.press("A")
    await until(pilot, lambda: isinstance(app.screen, AliasForm))
    await fill(pilot, name, server.endpoint, server.access_key, secret)
    await pilot.press("ctrl+s")


async def test_from_an_empty_state_dir_to_replicating_in_the_console(
    servers: tuple[SeaweedServer, SeaweedServer], tmp_path: Path
) -> None:
    source, target = servers
    n = next(_numbers)
    src, dst = client_for(source), client_for(target)
    src_bucket = make_bucket(src, f"first-src-{n}")
    dst_bucket = make_bucket(dst, f"first-dst-{n}")
    state = tmp_path / "state"
    embedded = EmbeddedEngine(EngineConfig(state_dir=state, workers=4, scan_interval=0.5))
    app = Console(embedded, starting=embedded.start, refresh=0.3)
    async with app.run_test(size=(120, 36)) as pilot:
        try:
            # the panel says what is starting first, then what to do next
            await until(pilot, lambda: hint(app) == next_step(0, 0))

            # A wrong secret is refused by the store itself; the form stays, nothing is saved.
            await add_endpoint(pilot, "src", source, "not-the-secret")
            error = app.screen.query_one("#form-error", Label)
            await until(pilot, lambda: "credentials rejected" in str(error.content))
            assert isinstance(app.screen, AliasForm)
            assert await embedded.aliases() == []
            secret = app.screen.query_one("#secret_key", Input)
            secret.value = ""
            secret.focus()
            await pilot.press(*source.secret_key, "ctrl+s")
            await until(pilot, lambda: not isinstance(app.screen, AliasForm))
            await until(pilot, lambda: hint(app) == next_step(1, 0))

            await add_endpoint(pilot, "dst", target, target.secret_key)
            # The form checks the store before it closes: slow under load (CI saw it open).
            await until(pilot, lambda: not isinstance(app.screen, AliasForm))
            await until(pilot, lambda: hint(app) == next_step(2, 0))
            stored = json.loads((state / "aliases.json").read_text())
            assert {a["name"] for a in await embedded.aliases()} == {"src", "dst"}
            assert target.secret_key not in json.dumps(await embedded.aliases())  # masked
            assert target.secret_key in json.dumps(stored)  # the engine can use it

            await pilot.press("a")
            await until(pilot, lambda: isinstance(app.screen, PolicyForm))
            await fill(pilot, f"src/{src_bucket}", f"dst/{dst_bucket}")
            await pilot.press("ctrl+s")
            await until(pilot, lambda: not isinstance(app.screen, PolicyForm), timeout=30)
            await until(pilot, lambda: hint(app) == "")  # replicating: nothing left to say

            body = b"first object through the console"
            await asyncio.to_thread(
                src.put_object, src_bucket, "hello.txt", io.BytesIO(body), len(body)
            )

            def arrived() -> bytes | None:
                try:
                    return dst.get_object(dst_bucket, "hello.txt").read()
                except S3Error:
                    return None

            async def copied() -> bytes | None:
                return await asyncio.to_thread(arrived)

            assert await within(copied, 30) == body
        finally:
            await embedded.close()
