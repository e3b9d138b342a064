"""Secrets into the CLI without putting them on argv, where every user's `ps` reads them.

Keys come from a hidden prompt on a terminal (as `mc alias set` asks), from
standard input (`--stdin`, for scripts), or from the environment; a secret
typed on the command line still works, with a one-line warning, so existing
scripts keep running while they are fixed.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click
from click.core import ParameterSource

from engine.errors import UserError

MAX_SECRET = 4096  # bytes per line read from --stdin: a key is far shorter


def warn_on_argv(what: str, instead: str) -> Any:
    """A click callback: warn (once, one line) when this value came from the command line."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if (
            value
            and param.name
            and ctx.get_parameter_source(param.name) is ParameterSource.COMMANDLINE
        ):
            warn(f"{what} on the command line is visible to other users (ps); {instead}")
        return value

    return callback


def warn(message: str) -> None:
    click.echo(f"mirrorline: warning: {message}", err=True)


def keys_from_stdin() -> tuple[str, str]:
    """Two lines on standard input: the access key, then the secret key."""
    lines = [sys.stdin.readline(MAX_SECRET + 1) for _ in range(2)]
    keys = [line.rstrip("\r\n") for line in lines]
    if any(len(k) > MAX_SECRET for k in keys) or not all(keys):
        raise UserError("--stdin: expected two lines, the access key then the secret key")
    return keys[0], keys[1]


def keys_from_prompt(access_key: str | None) -> tuple[str, str]:
    """Ask on the terminal, the secret without echo; no terminal is one clear line."""
    if not (sys.stdin.isatty() and os.isatty(2)):
        raise UserError(
            "no terminal to ask for the keys: pipe them with --stdin "
            "(two lines: access key, secret key)"
        )
    access = access_key or click.prompt("Enter Access Key", hide_input=True, err=True)
    secret = click.prompt("Enter Secret Key", hide_input=True, err=True)
    return access, secret


def plain_key(value: str, what: str) -> str:
    """A key signs requests: printable ASCII, or the signature can never match."""
    if not value:
        raise UserError(f"the {what} must not be empty")
    if not all(0x21 <= ord(ch) <= 0x7E for ch in value):
        raise UserError(f"the {what} must be printable ASCII without spaces")
    return value
