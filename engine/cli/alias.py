"""`mirrorline alias set | ls | rm`.

`set` works on the local state dir only: the API takes no secrets in, as it
shows none. `ls` and `rm` also work on a running engine (--connect).
"""

from __future__ import annotations

import click

from engine.aliases import Alias, validate_name, validate_url
from engine.cli.context import Context, remote_options, with_local, with_service
from engine.cli.output import emit_json, table
from engine.errors import UserError


@click.group()
def alias() -> None:
    """Named S3 endpoints and their credentials."""


@alias.command("set")
@click.argument("name")
@click.argument("url")
@click.argument("access_key")
@click.argument("secret_key")
@click.option("--region", default="us-east-1", show_default=True)
@click.option("--insecure", is_flag=True, help="Do not verify TLS certificates.")
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False), help="CA bundle for TLS.")
@click.option("--no-check", is_flag=True, help="Save without checking the endpoint.")
@click.pass_obj
def alias_set(
    ctx: Context,
    name: str,
    url: str,
    access_key: str,
    secret_key: str,
    region: str,
    insecure: bool,
    ca_file: str | None,
    no_check: bool,
) -> None:
    """Add or replace alias NAME for the endpoint at URL."""
    if not access_key or not secret_key:
        raise UserError("access key and secret key must not be empty")
    entry = Alias(
        name=validate_name(name),
        url=validate_url(url),
        access_key=access_key,
        secret_key=secret_key,
        region=region,
        insecure=insecure,
        ca_file=ca_file or "",
    )
    with_local(ctx, lambda service: service.set_alias(entry, check=not no_check))
    click.echo(f"Added `{name}` successfully.")


@alias.command("ls")
@click.option("--json", "as_json", is_flag=True)
@remote_options
@click.pass_obj
def alias_ls(ctx: Context, as_json: bool, connect: str | None, token: str | None) -> None:
    """List aliases (secrets masked)."""
    entries = with_service(ctx, connect, token, lambda service: service.aliases())
    if as_json:
        emit_json(entries)
        return
    table(
        ("NAME", "URL", "ACCESS KEY", "SECRET", "REGION", "FROM"),
        [
            (e["name"], e["url"], e["access_key"], e["secret_key"], e["region"], e["source"])
            for e in entries
        ],
    )


@alias.command("rm")
@click.argument("name")
@remote_options
@click.pass_obj
def alias_rm(ctx: Context, name: str, connect: str | None, token: str | None) -> None:
    """Remove alias NAME (refused while a policy uses it)."""
    with_service(ctx, connect, token, lambda service: service.remove_alias(name))
    click.echo(f"Removed `{name}` successfully.")
