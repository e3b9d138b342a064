"""`mirrorline run`: the engine in the foreground, until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import signal

import click

from engine.cli import Context, cli
from engine.engine import Engine, EngineConfig


@cli.command()
@click.option(
    "--workers",
    type=click.IntRange(1, 1024),
    default=32,
    show_default=True,
    help="Concurrent transfers per target.",
)
@click.option(
    "--scan-interval",
    type=click.FloatRange(0.2, 86400),
    default=5.0,
    show_default=True,
    help="Seconds between backstop scans of each source.",
)
@click.option(
    "--until-synced",
    is_flag=True,
    help="Exit 0 once every policy is scanned and its queue is empty.",
)
@click.option("--no-events", is_flag=True, help="Do not listen for MinIO bucket notifications.")
@click.option(
    "--tag-sweep-rate",
    type=click.FloatRange(0, 100000),
    default=50.0,
    show_default=True,
    help="Replicated versions per second whose tags are compared (metadata-sync; 0: off).",
)
@click.pass_obj
def run(
    ctx: Context,
    workers: int,
    scan_interval: float,
    until_synced: bool,
    no_events: bool,
    tag_sweep_rate: float,
) -> None:
    """Run the replication engine (SIGINT/SIGTERM drain gracefully)."""
    config = EngineConfig(
        state_dir=ctx.state_dir,
        workers=workers,
        scan_interval=scan_interval,
        events=not no_events,
        tag_sweep_rate=tag_sweep_rate,
    )

    async def main() -> None:
        engine = Engine(config)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await engine.run(stop, until_synced=until_synced)

    if not until_synced:
        click.echo(f"mirrorline engine running on {ctx.state_dir} (Ctrl-C to stop)", err=True)
    asyncio.run(main())
