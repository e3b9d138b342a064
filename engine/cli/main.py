"""`mirrorline`: the root command group and the entry point.

Sub-commands are added explicitly here; commands that live outside the engine
(the console's `tui`, `demo`) arrive through the `mirrorline.commands` entry
point group, so the engine never imports the console.
"""

from __future__ import annotations

import logging
import sys
from importlib.metadata import entry_points
from pathlib import Path

import click

from engine import config
from engine.cli import alias, compare, explain, policies, resync, run, status
from engine.cli.context import Context, Group, add_queue_option

# `compare`, `explain`, `resync` and `status` add their commands to the `replicate` group.
_SUBGROUPS = (compare, explain, resync, status)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="State directory (default: $MIRRORLINE_HOME or ~/.local/state/mirrorline).",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="mirrorline")
@click.pass_context
def cli(ctx: click.Context, state_dir: Path | None, verbose: int) -> None:
    """Asynchronous bucket replication for S3-compatible object stores."""
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(
        level=max(level, logging.DEBUG),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    ctx.ensure_object(Context).state_dir = config.resolve(state_dir)


def main() -> None:
    for command in (alias.alias, policies.replicate, run.run):
        cli.add_command(command)
    for entry in entry_points(group="mirrorline.commands"):
        try:
            cli.add_command(entry.load(), entry.name)
        except Exception as exc:  # noqa: BLE001 - one broken command must not take all down
            click.echo(f"mirrorline: warning: `{entry.name}` is unavailable: {exc}", err=True)
    add_queue_option(cli)
    cli(prog_name="mirrorline")
