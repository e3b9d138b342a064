"""`mirrorline alias set | ls | rm`."""

from __future__ import annotations

import click

from engine.aliases import Alias, AliasBook, validate_name, validate_url
from engine.checks.endpoints import check_alias
from engine.cli.context import Context, run_async
from engine.cli.output import emit_json, table
from engine.errors import UserError
from engine.state import open_state


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
    book = AliasBook(ctx.aliases_path)
    if not no_check:
        run_async(check_alias(entry))
    book.set(entry)
    click.echo(f"Added `{name}` successfully.")


@alias.command("ls")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def alias_ls(ctx: Context, as_json: bool) -> None:
    """List aliases (secrets masked)."""
    entries = [a.public() for _, a in sorted(AliasBook(ctx.aliases_path).all().items())]
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
@click.pass_obj
def alias_rm(ctx: Context, name: str) -> None:
    """Remove alias NAME (refused while a policy uses it)."""
    book = AliasBook(ctx.aliases_path)
    entry = book.all().get(name)
    if entry is None or entry.from_env:
        book.remove(name)  # raises the right one-line error: unknown, or set by the environment
    if ctx.db_path.exists():
        users = run_async(_policies_using(ctx, name))
        if users:
            raise UserError(
                f"alias {name!r} is used by policy {', '.join(users)}: remove those first"
            )
    book.remove(name)
    click.echo(f"Removed `{name}` successfully.")


async def _policies_using(ctx: Context, name: str) -> list[str]:
    state = await open_state(ctx.db_path)
    try:
        return [
            p.id for p in await state.policies.all() if name in (p.source_alias, p.target_alias)
        ]
    finally:
        await state.close()
