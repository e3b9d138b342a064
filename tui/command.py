"""`mirrorline tui`: the console, with the engine embedded or attached to a remote one."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import click

from engine import config
from engine.cli.context import Context
from engine.config import EngineConfig
from engine.errors import UserError
from engine.service.embedded import EmbeddedEngine
from engine.service.remote import RemoteService


def log_to_file(path: Path) -> None:
    """Log lines on the terminal would tear the screen: they go to a file instead."""
    root = logging.getLogger()
    level = root.level
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(min(level, logging.INFO))


@click.command()
@click.option("--connect", metavar="URL", help="Attach to `mirrorline run --listen` at URL.")
@click.option("--token", envvar="MIRRORLINE_TOKEN", help="The remote engine's API token.")
@click.option(
    "--refresh",
    type=click.FloatRange(0.2, 60),
    default=1.0,
    show_default=True,
    help="Seconds between refreshes (raise it on slow links).",
)
@click.option("--read-only", is_flag=True, help="No actions: a display for shared screens.")
@click.option("--workers", type=click.IntRange(1, 1024), default=32, show_default=True)
@click.option("--scan-interval", type=click.FloatRange(0.2, 86400), default=5.0, show_default=True)
@click.pass_obj
def tui(
    ctx: Context,
    connect: str | None,
    token: str | None,
    refresh: float,
    read_only: bool,
    workers: int,
    scan_interval: float,
) -> None:
    """The live console: queue, transfers, failures and lag, with keys to act."""
    from tui.app import Console

    if connect:
        source = RemoteService(connect, token or "")
        app = Console(source, refresh=refresh, read_only=read_only, where=connect)
    else:
        embedded = EmbeddedEngine(
            EngineConfig(state_dir=ctx.state_dir, workers=workers, scan_interval=scan_interval)
        )
        app = Console(
            embedded,
            refresh=refresh,
            read_only=read_only,
            starting=embedded.start,
            where=f"engine on {ctx.state_dir}",
        )
    if not os.isatty(1):
        raise UserError(
            "the console needs a terminal (use `mirrorline replicate status` in scripts)"
        )
    log_to_file(config.ensure(ctx.state_dir) / "console.log")
    try:
        app.run()
    finally:
        if not connect:  # the console crashed or was killed: still drain the engine
            asyncio.run(embedded.close())
    if app.return_code:
        raise SystemExit(app.return_code)
