"""`mirrorline replicate add | update | rm | ls`: the policies."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol, TypeVar

import click

from engine.cli.context import Context, remote_options, with_service
from engine.cli.output import emit_json, size, table
from engine.errors import MissingError, UserError
from engine.policy import OPERATIONS, Policy, format_tags, parse_id, parse_path
from engine.service import PolicySpec, Service


class Named(Protocol):
    """A policy, or a policy's stats: anything with an id and an ALIAS/BUCKET source."""

    @property
    def id(self) -> str: ...

    @property
    def source(self) -> str: ...


N = TypeVar("N", bound=Named)


def select(policies: list[N], path: str | None, policy_id: str | None) -> list[N]:
    chosen = policies
    if path:
        alias, bucket = parse_path(path, "ALIAS/BUCKET")
        chosen = [p for p in chosen if p.source == f"{alias}/{bucket}"]
        if not chosen:
            raise UserError(f"no replication policy for {path}")
    if policy_id:
        chosen = [p for p in chosen if p.id == policy_id]
        if not chosen:
            raise MissingError(f"no policy with id {policy_id!r}")
    return chosen


@click.group()
def replicate() -> None:
    """Replication policies and their progress."""


def policy_options(add: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        options = [
            click.option(
                "--remote-target", required=add, help="Target as ALIAS/BUCKET.", metavar="PATH"
            ),
            click.option("--priority", type=int, help="Unique; higher runs first."),
            click.option("--prefix", help="Only keys starting with this prefix."),
            click.option("--tags", help='Only objects with these tags: "k=v&k2=v2".'),
            click.option(
                "--replicate",
                "replicate_ops",
                help=f"Comma list of: {','.join(OPERATIONS)} (default: all).",
            ),
            click.option("--bandwidth", help="Limit for this target, e.g. 50MiB (per second)."),
        ]
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


@replicate.command("add")
@click.argument("path", metavar="ALIAS/BUCKET")
@policy_options(add=True)
@click.option("--id", "policy_id", help="Policy id (default: generated).")
@click.option("--disable", is_flag=True, help="Add the policy disabled.")
@remote_options
@click.pass_obj
def add(
    ctx: Context,
    path: str,
    remote_target: str,
    priority: int | None,
    prefix: str | None,
    tags: str | None,
    replicate_ops: str | None,
    bandwidth: str | None,
    policy_id: str | None,
    disable: bool,
    connect: str | None,
    token: str | None,
) -> None:
    """Replicate ALIAS/BUCKET to --remote-target."""
    source_alias, source_bucket = parse_path(path, "source")
    target_alias, target_bucket = parse_path(remote_target, "--remote-target")
    if policy_id is not None:
        if not policy_id.strip():
            raise UserError("--id must not be empty")
        parse_id(policy_id)

    spec = PolicySpec(
        source=f"{source_alias}/{source_bucket}",
        target=f"{target_alias}/{target_bucket}",
        id=policy_id,
        priority=priority,
        prefix=prefix or "",
        tags=tags or "",
        replicate=replicate_ops,
        bandwidth=bandwidth or "",
        enabled=not disable,
    )
    policy = with_service(ctx, connect, token, lambda service: service.add_policy(spec))
    click.echo(f"Replication policy {policy.id} added: {policy.source} -> {policy.target}")


@replicate.command("update")
@click.option("--id", "policy_id", required=True)
@policy_options(add=False)
@click.option("--state", type=click.Choice(["enable", "disable"]))
@remote_options
@click.pass_obj
def update(
    ctx: Context,
    policy_id: str,
    remote_target: str | None,
    priority: int | None,
    prefix: str | None,
    tags: str | None,
    replicate_ops: str | None,
    bandwidth: str | None,
    state: str | None,
    connect: str | None,
    token: str | None,
) -> None:
    """Change a policy; options left out keep their value."""
    if remote_target is not None:
        remote_target = "/".join(parse_path(remote_target, "--remote-target"))
    given = {
        "target": remote_target,
        "priority": priority,
        "prefix": prefix,
        "tags": tags,
        "replicate": replicate_ops,
        "bandwidth": bandwidth,
        "enabled": None if state is None else state == "enable",
    }
    changes = {name: value for name, value in given.items() if value is not None}
    if not changes:
        raise UserError("nothing to update: give at least one option")

    async def work(service: Service) -> Policy:
        old = PolicySpec.of(await service.policy(policy_id))
        return await service.update_policy(policy_id, replace(old, **changes))

    policy = with_service(ctx, connect, token, work)
    click.echo(f"Replication policy {policy.id} updated.")


@replicate.command("rm")
@click.option("--id", "policy_id")
@click.option("--all", "remove_all", is_flag=True)
@click.option("--force", is_flag=True, help="Required with --all.")
@remote_options
@click.pass_obj
def rm(
    ctx: Context,
    policy_id: str | None,
    remove_all: bool,
    force: bool,
    connect: str | None,
    token: str | None,
) -> None:
    """Remove a policy (--id) or all of them (--all --force), with their queued tasks."""
    if bool(policy_id) == remove_all:
        raise UserError("give exactly one of --id ID or --all")
    if remove_all and not force:
        raise UserError("--all removes every policy; add --force to confirm")

    async def work(service: Service) -> list[str]:
        ids = [policy_id] if policy_id else [p.id for p in await service.policies()]
        for pid in ids:
            await service.remove_policy(pid)
        return ids

    for pid in with_service(ctx, connect, token, work):
        click.echo(f"Replication policy {pid} removed.")


@replicate.command("ls")
@click.argument("path", required=False, metavar="[ALIAS/BUCKET]")
@click.option("--json", "as_json", is_flag=True)
@remote_options
@click.pass_obj
def ls(
    ctx: Context, path: str | None, as_json: bool, connect: str | None, token: str | None
) -> None:
    """List policies."""
    policies = select(with_service(ctx, connect, token, lambda s: s.policies()), path, None)
    if as_json:
        emit_json([p.public() for p in policies])
        return
    table(
        ("ID", "PRIORITY", "SOURCE", "TARGET", "STATE", "PREFIX", "TAGS", "REPLICATE", "BANDWIDTH"),
        [
            (
                p.id,
                p.priority,
                p.source,
                p.target,
                _setting(p),
                p.prefix or "-",
                format_tags(p.tags) or "-",
                ",".join(sorted(p.replicate)) or "-",
                f"{size(p.bandwidth)}/s" if p.bandwidth else "-",
            )
            for p in policies
        ],
    )


def _setting(policy: Policy) -> str:
    """How the policy is set (the snapshot's state says how it runs: `replicate status`)."""
    if not policy.enabled:
        return "disabled"
    return "paused" if policy.paused else "enabled"
