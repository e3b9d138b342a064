"""`mirrorline run`: the engine in the foreground, until SIGINT/SIGTERM.

The API server and the local service are imported only where used: `run
--until-synced` goes from launch to its first copy without them.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import click

from engine.aliases import AliasBook
from engine.cli.context import Context, run_async
from engine.cli.runtime import run_engine_loop
from engine.config import EngineConfig, MiB, api_token, ensure, public_address
from engine.engine import Engine
from engine.errors import UserError
from engine.policy import Policy, parse_size
from engine.telemetry.snapshot import Snapshot


@click.command()
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
    help="Exit 0 once every policy is scanned and its queue is empty (a one-shot run: "
    "its scan finds the work, so it does not listen for bucket notifications).",
)
@click.option("--no-events", is_flag=True, help="Do not listen for MinIO bucket notifications.")
@click.option(
    "--tag-sweep-rate",
    type=click.FloatRange(0, 100000),
    default=50.0,
    show_default=True,
    help="Replicated versions per second whose tags are compared (metadata-sync; 0: off).",
)
@click.option(
    "--multipart-from",
    metavar="SIZE",
    default="256MiB",
    show_default=True,
    help="Objects larger than this go in 8 MiB parts; smaller ones stream in one PUT "
    "(rclone's --s3-upload-cutoff).",
)
@click.option(
    "--listen",
    metavar="HOST:PORT",
    help="Serve the HTTP API and /metrics here (e.g. 127.0.0.1:7480).",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The API's bearer token (default: STATE_DIR/api-token, created on first start).",
)
@click.option("--metrics-public", is_flag=True, help="Serve /metrics without the token.")
@click.pass_obj
def run(
    ctx: Context,
    workers: int,
    scan_interval: float,
    until_synced: bool,
    no_events: bool,
    tag_sweep_rate: float,
    multipart_from: str,
    listen: str | None,
    token_file: Path | None,
    metrics_public: bool,
) -> None:
    """Run the replication engine (SIGINT/SIGTERM drain gracefully)."""
    config = EngineConfig(
        state_dir=ctx.state_dir,
        workers=workers,
        scan_interval=scan_interval,
        events=not (no_events or until_synced),
        tag_sweep_rate=tag_sweep_rate,
        multipart_from=_multipart_from(multipart_from),
        queue=ctx.queue,
    )
    attachments = []
    if listen is not None:
        from engine.service.server import attach_api, listen_socket  # only with --listen

        token_path = token_file or ensure(ctx.state_dir) / "api-token"
        token = api_token(token_path)
        sock = listen_socket(listen)
        attachments.append(attach_api(sock, token, metrics_public))
        host, port = sock.getsockname()[:2]
        click.echo(f"API on http://{host}:{port} (token in {token_path})", err=True)

    async def main() -> Snapshot | None:
        engine = Engine(config, attachments)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await engine.run(stop, until_synced=until_synced)
        return engine.snapshot

    if not until_synced:
        where = public_address(ctx.queue) if ctx.queue else ctx.state_dir
        click.echo(f"mirrorline engine running on {where} (Ctrl-C to stop)", err=True)
        from engine.service import next_step

        aliases = AliasBook(ctx.state_dir / "aliases.json").all()
        hint = next_step(len(aliases), len(run_async(_policies(ctx))))
        if hint:
            click.echo(f"mirrorline: {hint}; the engine picks it up while it runs", err=True)
    final = run_engine_loop(main())
    failed = sum(p.backlog.failed for p in final.policies) if final else 0
    if until_synced and failed:
        click.echo(
            f"mirrorline: {failed} task(s) failed; see `mirrorline replicate backlog --failed`",
            err=True,
        )
        sys.exit(1)


async def _policies(ctx: Context) -> list[Policy]:
    from engine.service.local import LocalService

    service = await LocalService.open(ctx.state_dir, queue=ctx.queue)
    try:
        return await service.policies()
    finally:
        await service.close()


def _multipart_from(value: str) -> int:
    """Parts are 8 MiB, and S3 takes at most 5 GiB in one PUT: the cut-off lies between."""
    size = parse_size(value, "--multipart-from")
    if not 8 * MiB <= size <= 5 * 1024 * MiB:
        raise UserError(f"--multipart-from {value!r} must be between 8MiB and 5GiB")
    return size
