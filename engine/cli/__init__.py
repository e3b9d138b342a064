"""`mirrorline`: the command line, modelled on `mc alias` and `mc replicate`.

Every user mistake ends as one line on stderr and exit status 1 (diff uses 2,
since 1 there means "differences found"); no traceback reaches the user.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from engine import statedir
from engine.errors import MirrorlineError

T = TypeVar("T")


class Context:
    """What every sub-command gets: where the state lives."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    @property
    def aliases_path(self) -> Path:
        return self.state_dir / "aliases.json"

    @property
    def db_path(self) -> Path:
        return self.state_dir / "mirrorline.db"


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


# click >= 8.2 raises this (a UsageError) for a bare group; its "message" is the help.
_NO_ARGS_IS_HELP: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())


def _usage_failure(exc: click.UsageError) -> NoReturn:
    """A missing or malformed argument: one line too, not click's four-line usage block."""
    where = exc.ctx.command_path if exc.ctx else "mirrorline"
    message = " ".join(exc.format_message().split())
    click.echo(f"mirrorline: error: {message} (see `{where} --help`)", err=True)
    sys.exit(2 if where.endswith("replicate diff") else 1)


class Group(click.Group):
    """Turns our errors into one line and a status, never a traceback."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except _NO_ARGS_IS_HELP:
            raise  # a bare group: click shows its help
        except click.UsageError as exc:
            _usage_failure(exc)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MirrorlineError as exc:
            click.echo(f"mirrorline: error: {exc.reason}", err=True)
            sys.exit(getattr(exc, "exit_code", 1))
        except _NO_ARGS_IS_HELP:
            raise  # a bare group: click shows its help
        except click.UsageError as exc:
            _usage_failure(exc)
        except KeyboardInterrupt:
            click.echo("mirrorline: interrupted", err=True)
            sys.exit(130)


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
    ctx.obj = Context(statedir.resolve(state_dir))


def main() -> None:
    from engine.cli import alias, progress, replicate, resync, run, verify  # noqa: F401
    from tui import cli as console  # noqa: F401 - `mirrorline tui`

    cli(prog_name="mirrorline")
