"""What every sub-command shares: the state dir, a service, one-line errors.

Every command works through `Service`: on the state dir (`LocalService`, the
audit log's actor `cli`) or, with --connect, on a running engine's HTTP API
(`RemoteService`, actor `api`). Nothing here opens the database itself.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar
from urllib.parse import urlsplit

import click
from click.core import ParameterSource

from engine.cli.output import say
from engine.cli.secrets import warn_on_argv
from engine.errors import MirrorlineError
from engine.service import Service

if TYPE_CHECKING:  # imported where used: `run` needs neither (nor minio, nor httpx)
    from engine.service.local import LocalService

T = TypeVar("T")
S = TypeVar("S", bound=Service)
TOKEN_OPTION: dict[str, Any] = {
    "envvar": "MIRRORLINE_TOKEN",
    "help": "The engine's API token (default: $MIRRORLINE_TOKEN; on argv it shows in `ps`).",
    "callback": warn_on_argv("an API token", "set $MIRRORLINE_TOKEN instead"),
}


class Context:
    """What every sub-command gets: where the state lives."""

    def __init__(self, state_dir: Path = Path(), queue: str | None = None) -> None:
        self.state_dir = state_dir
        self.queue = queue  # postgresql://...: the shared state (aliases stay in state_dir)


def _set_queue(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value:
        scheme = value.partition("://")[0]
        if scheme not in ("postgresql", "postgres"):
            raise click.BadParameter("expected postgresql://USER@HOST:PORT/DB", ctx, param)
        typed = ctx.get_parameter_source("queue") is ParameterSource.COMMANDLINE
        if typed and urlsplit(value).password:  # every user on the machine sees it in `ps`
            raise click.BadParameter(
                "put the password in ~/.pgpass or $PGPASSWORD, not on the command line", ctx, param
            )
        ctx.ensure_object(Context).queue = value


def queue_option() -> click.Option:
    """--queue URL (or $MIRRORLINE_QUEUE): the shared PostgreSQL state, on any command."""
    return click.Option(
        ["--queue"],
        metavar="URL",
        envvar="MIRRORLINE_QUEUE",
        expose_value=False,
        callback=_set_queue,
        help="A PostgreSQL queue several engines share, e.g. postgresql://me@db:5432/mirrorline "
        "(default: $MIRRORLINE_QUEUE; else the state dir's SQLite). The password goes in "
        "~/.pgpass or $PGPASSWORD, never here.",
    )


def add_queue_option(command: click.Command) -> None:
    """Give `command` and all its sub-commands --queue (`run --queue`, `replicate ls --queue`)."""
    if not any(p.name == "queue" for p in command.params):
        command.params.append(queue_option())
    for sub in getattr(command, "commands", {}).values():
        add_queue_option(sub)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def _using(opened: Callable[[], Awaitable[S]], work: Callable[[S], Awaitable[T]]) -> T:
    async def go() -> T:
        service = await opened()
        try:
            return await work(service)
        finally:
            await service.close()

    return run_async(go())


def with_local(ctx: Context, work: Callable[[LocalService], Awaitable[T]]) -> T:
    """Run `work` on the state dir: for what only a local service does (`alias set`)."""
    from engine.service.local import LocalService

    return _using(lambda: LocalService.open(ctx.state_dir, queue=ctx.queue), work)


def with_service(
    ctx: Context, connect: str | None, token: str | None, work: Callable[[Service], Awaitable[T]]
) -> T:
    """Run `work` on the engine at `connect` (HTTP API), or on the local state dir."""
    if not connect:
        return with_local(ctx, work)

    async def remote() -> Service:
        from engine.service.remote import RemoteService

        return RemoteService(connect, token or "")

    return _using(remote, work)


def remote_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--connect/--token: act on a running engine over its HTTP API instead of the state dir."""
    fn = click.option("--token", **TOKEN_OPTION)(fn)
    return click.option(
        "--connect", metavar="URL", help="A running engine's API, e.g. http://host:7480."
    )(fn)


# click >= 8.2 raises this (a UsageError) for a bare group; its "message" is the help.
_NO_ARGS_IS_HELP: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())


def _usage_failure(exc: click.UsageError) -> NoReturn:
    """A missing or malformed argument: one line too, not click's four-line usage block."""
    where = exc.ctx.command_path if exc.ctx else "mirrorline"
    message = " ".join(exc.format_message().split())
    say(f"mirrorline: error: {message} (see `{where} --help`)", err=True)
    sys.exit(1)


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
            say(f"mirrorline: error: {exc.reason}", err=True)  # may quote a server
            sys.exit(1)
        except _NO_ARGS_IS_HELP:
            raise  # a bare group: click shows its help
        except click.UsageError as exc:
            _usage_failure(exc)
        except KeyboardInterrupt:
            click.echo("mirrorline: interrupted", err=True)
            sys.exit(130)
