"""`mirrorline replicate resync start|status|cancel`: re-walk a bucket, like `mc replicate resync`.

The CLI only writes and reads the `resyncs` table; the running engine does the
walk (engine/resync.py) and picks up a start or a cancel within a second.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click

from engine.cli.context import Context, run_async
from engine.cli.output import age, emit_json, table
from engine.cli.policies import replicate, select
from engine.policy import Policy
from engine.replication.resync import DEFAULT_PAGE
from engine.state import open_state
from engine.state.stores import Resync, ResyncStore

T = TypeVar("T")


def _with_resyncs(
    ctx: Context,
    path: str,
    policy_id: str | None,
    work: Callable[[list[Policy], ResyncStore], Awaitable[T]],
) -> T:
    async def go() -> T:
        state = await open_state(ctx.db_path)
        try:
            policies = select(await state.policies.all(), path, policy_id)
            return await work(policies, state.resyncs)
        finally:
            await state.close()

    return run_async(go())


@replicate.group("resync")
def resync() -> None:
    """Walk a source bucket again and re-queue what its target lacks."""


@resync.command("start")
@click.argument("path", metavar="ALIAS/BUCKET")
@click.option("--id", "policy_id", help="One policy (default: every policy of the bucket).")
@click.option(
    "--page-size",
    type=click.IntRange(1, 1000),
    default=DEFAULT_PAGE,
    show_default=True,
    help="Versions listed, compared and checkpointed at a time.",
)
@click.pass_obj
def start(ctx: Context, path: str, policy_id: str | None, page_size: int) -> None:
    """Compare every object with the target and re-queue what differs.

    Ignores the replica map and the existing-objects setting: what counts is what
    the target really holds. The running engine does the work; progress survives
    a restart.
    """

    async def work(policies: list[Policy], store: ResyncStore) -> list[Resync]:
        return await store.start([p.id for p in policies], page_size)

    for r in _with_resyncs(ctx, path, policy_id, work):
        click.echo(f"Resync {r.id} of policy {r.policy} started.")
    click.echo(f"The engine picks it up; see `mirrorline replicate resync status {path}`.")


@resync.command("status")
@click.argument("path", metavar="ALIAS/BUCKET")
@click.option("--id", "policy_id", help="One policy (default: every policy of the bucket).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def status(ctx: Context, path: str, policy_id: str | None, as_json: bool) -> None:
    """The latest resync of each policy: scanned, queued, replicated, failed, rate, ETA."""

    async def work(policies: list[Policy], store: ResyncStore) -> list[Resync]:
        found = [await store.latest(p.id) for p in policies]
        return [r for r in found if r is not None]

    now = time.time()
    report = [r.public(now) for r in _with_resyncs(ctx, path, policy_id, work)]
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
            click.echo(f"resync {r['id']}: {r['last_error']}")


@resync.command("cancel")
@click.argument("path", metavar="ALIAS/BUCKET")
@click.option("--id", "policy_id", help="One policy (default: every policy of the bucket).")
@click.pass_obj
def cancel(ctx: Context, path: str, policy_id: str | None) -> None:
    """Stop the walk; copies it already queued still run (they are real differences)."""

    async def work(policies: list[Policy], store: ResyncStore) -> list[int]:
        return await store.cancel([p.id for p in policies])

    for rid in _with_resyncs(ctx, path, policy_id, work):
        click.echo(f"Resync {rid} cancelled.")
