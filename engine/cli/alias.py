"""`mirrorline alias set | ls | rm`.

`set` works on the local state dir only: the API takes no secrets in, as it
shows none. `ls` and `rm` also work on a running engine (--connect).
"""

from __future__ import annotations

import click

from engine.aliases import Alias, validate_name, validate_url
from engine.cli.context import Context, remote_options, with_local, with_service
from engine.cli.output import emit_json, table
from engine.cli.secrets import keys_from_prompt, keys_from_stdin, plain_key, warn_on_argv
from engine.errors import UserError


@click.group()
def alias() -> None:
    """Named S3 endpoints and their credentials."""


@alias.command("set")
@click.argument("name")
@click.argument("url")
@click.argument("access_key", required=False)
@click.argument(
    "secret_key",
    required=False,
    callback=warn_on_argv("a secret key", "leave it out to be asked, or use --stdin"),
)
@click.option("--stdin", "from_stdin", is_flag=True, help="Read both keys from stdin (2 lines).")
@click.option("--region", default="us-east-1", show_default=True)
@click.option("--insecure", is_flag=True, help="Do not verify TLS certificates.")
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False), help="CA bundle for TLS.")
@click.option("--no-check", is_flag=True, help="Save without checking the endpoint.")
@click.pass_obj
def alias_set(
    ctx: Context,
    name: str,
    url: str,
    access_key: str | None,
    secret_key: str | None,
    from_stdin: bool,
    region: str,
    insecure: bool,
    ca_file: str | None,
    no_check: bool,
) -> None:
    """Add or replace alias NAME for the endpoint at URL.

    The keys are asked for on the terminal (not echoed), or read from standard
    input with --stdin (access key, then secret key, one per line). Given as
    arguments they work too, but every user on the machine sees them in `ps`.
    """
    name, url = validate_name(name), validate_url(url)
    if from_stdin:
        if access_key is not None:
            raise UserError("--stdin reads both keys: give no keys as arguments with it")
        access_key, secret_key = keys_from_stdin()
    elif secret_key is None:
        access_key, secret_key = keys_from_prompt(access_key)
    entry = Alias(
        name=name,
        url=url,
        access_key=plain_key(access_key or "", "access key"),
        secret_key=plain_key(secret_key, "secret key"),
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
