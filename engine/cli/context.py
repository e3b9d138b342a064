"""What every sub-command shares: the state dir, an event loop, one-line errors."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

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
