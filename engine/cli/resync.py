"""`mirrorline replicate resync start|status|cancel`: re-walk a bucket, like `mc replicate resync`.

The command only starts, reads and cancels resyncs through the service; the
running engine does the walk (engine/replication/resync.py) and picks up a
start or a cancel within a second.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import click

from engine.cli.context import Context, remote_options, with_service
from engine.cli.output import age, emit_json, say, table
from engine.cli.policies import replicate, select
from engine.config import DEFAULT_RESYNC_PAGE
from engine.service import Service

T = TypeVar("T")


def _for_policies(
    ctx: Context,
    path: str,
    policy_id: str | None,
    connect: str | None,
    token: str | None,
    work: Callable[[Service, list[str]], Awaitable[T]],
) -> T:
    """`work` on the ids of the bucket's policies (or of the one --id names)."""

    async def go(service: Service) -> T:
        chosen = select(await service.policies(), path, policy_id)
        return await work(service, [p.id for p in chosen])

    return with_service(ctx, connect, token, go)


@replicate.group("resync")
def resync() -> None:
    """Walk a source bucket again and re-queue what its target lacks."""


@resync.command("start")
@click.argument("path", metavar="ALIAS/BUCKET")
@click.option("--id", "policy_id", help="One policy (default: every policy of the bucket).")
@click.option(
    "--page-size",
    type=click.IntRange(1, 1000),
    default=DEFAULT_RESYNC_PAGE,
    show_default=True,
    help="Versions listed, compared and checkpointed at a time.",
)
@remote_options
@click.pass_obj
def start(
    ctx: Context,
    path: str,
    policy_id: str | None,
    page_size: int,
    connect: str | None,
    token: str | None,
) -> None:
    """Compare every object with the target and re-queue what differs.

    Ignores the replica map and the existing-objects setting: what counts is what
    the target really holds. The running engine does the work; progress survives
    a restart.
    """

    async def work(service: Service, ids: list[str]) -> list[dict[str, object]]:
        return await service.start_resync(*ids, page_size=page_size)

    for r in _for_policies(ctx, path, policy_id, connect, token, work):
        click.echo(f"Resync {r['id']} of policy {r['policy']} started.")
    click.echo(f"The engine picks it up; see `mirrorline replicate resync status {path}`.")


@resync.command("status")
@click.argument("path", metavar="ALIAS/BUCKET")
@click.option("--id", "policy_id", help="One policy (default: every policy of the bucket).")
@click.option("--json", "as_json", is_flag=True)
@remote_options
@click.pass_obj
def status(
    ctx: Context,
    path: str,
    policy_id: str | None,
    as_json: bool,
    connect: str | None,
    token: str | None,
) -> None:
    """The latest resync of each policy: scanned, queued, replicated, failed, rate, ETA."""

    async def work(service: Service, ids: list[str]) -> list[dict[str, object]]:
        return [r for r in await service.resyncs() if r["policy"] in ids]

    report = _for_policies(ctx, path, policy_id, connect, token, work)
    if as_json:
        emit_json(report)
        return
    if not report:
        click.echo(f"No resync has run for {path}.")
        return
    table(
        (
            "ID",
            "POLICY",
            "STATE",
            "SCANNED",
            "QUEUED",
            "REPLICATED",
            "FAILED",
            "PENDING",
            "RATE",
            "ETA",
            "AT KEY",
        ),
        [
            (
                r["id"],
                r["policy"],
                r["phase"],
                f"{r['scanned']}/{r['total']}" if r["total"] is not None else r["scanned"],
                r["enqueued"],
                r["replicated"],
                r["failed"],
                r["pending"],
                f"{r['rate']:.0f} obj/s" if r["rate"] is not None else "-",
                age(r["eta_seconds"]),
                r["current_key"] or "-",
            )
            for r in report
        ],
    )
    for r in report:
        if r["last_error"]:
            say(f"resync {r['id']}: {r['last_error']}")


@resync.command("cancel")
@click.argument("path", metavar="ALIAS/BUCKET")
@click.option("--id", "policy_id", help="One policy (default: every policy of the bucket).")
@remote_options
@click.pass_obj
def cancel(
    ctx: Context, path: str, policy_id: str | None, connect: str | None, token: str | None
) -> None:
    """Stop the walk; copies it already queued still run (they are real differences)."""

    async def work(service: Service, ids: list[str]) -> list[int]:
        return await service.cancel_resync(*ids)

    for rid in _for_policies(ctx, path, policy_id, connect, token, work):
        click.echo(f"Resync {rid} cancelled.")
