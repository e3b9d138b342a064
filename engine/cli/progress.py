"""`mirrorline replicate status|backlog|retry|pause|resume|diff`: how replication is doing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import click

from engine.cli import Context
from engine.cli.output import age, emit_json, size, table
from engine.cli.replicate import State, replicate, select, state_label, with_state
from engine.diff import diff_policy
from engine.errors import UserError
from engine.model import Counts, TaskState
from engine.policies import Policy


@replicate.command("status")
@click.argument("path", required=False, metavar="[ALIAS/BUCKET]")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def status(ctx: Context, path: str | None, as_json: bool) -> None:
    """Per policy: replicated, pending, in flight, retrying, failed, lag and rate."""

    async def work(state: State) -> tuple[list[Policy], dict[str, Counts], bool, dict[str, Any]]:
        policies = select(await state.store.all(), path, None)
        counts = await state.queue.counts()
        paused = await state.store.engine_paused()
        return policies, counts, paused, await state.store.engine_snapshot()

    policies, counts, paused, live = with_state(ctx, work)
    now = time.time()
    fresh = bool(live.get("running")) and now - live.get("updated_at", 0) < 10
    report = []
    for p in policies:
        c = counts.get(p.id, Counts())
        rate = live.get("rates", {}).get(p.id, [0.0, 0.0]) if fresh else [0.0, 0.0]
        report.append(
            {
                "id": p.id,
                "source": p.source,
                "target": p.target,
                "state": state_label(p, paused),
                "replicated": c.replicated,
                "replicated_bytes": c.replicated_bytes,
                "skipped": c.skipped,
                "pending": c.pending,
                "pending_bytes": c.pending_bytes,
                "in_flight": c.in_flight,
                "retrying": c.retrying,
                "failed": c.failed,
                "failed_bytes": c.failed_bytes,
                "lag_seconds": now - c.oldest_pending_at if c.oldest_pending_at else 0.0,
                "rate_bytes": rate[0],
                "bandwidth_limit": p.bandwidth,
                "rate_objects": rate[1],
                "target_online": live.get("links", {}).get(p.target_alias, {}).get("online")
                if fresh
                else None,
                "scans": live.get("scans", {}).get(p.id, [0, None])[0],
                "last_scan_at": live.get("scans", {}).get(p.id, [0, None])[1],
                "scan_error": live.get("scan_errors", {}).get(p.id, "") if fresh else "",
            }
        )
    if as_json:
        emit_json({"engine_running": fresh, "engine_paused": paused, "policies": report})
        return
    click.echo(f"engine: {'running' if fresh else 'not running'}{', paused' if paused else ''}")
    table(
        (
            "ID",
            "SOURCE -> TARGET",
            "STATE",
            "REPLICATED",
            "PENDING",
            "IN FLIGHT",
            "RETRYING",
            "FAILED",
            "LAG",
            "RATE",
        ),
        [
            (
                r["id"],
                f"{r['source']} -> {r['target']}",
                r["state"],
                f"{r['replicated']} ({size(r['replicated_bytes'])})",
                f"{r['pending']} ({size(r['pending_bytes'])})",
                r["in_flight"],
                r["retrying"],
                r["failed"],
                age(r["lag_seconds"]) if r["pending"] else "-",
                (f"{size(r['rate_bytes'])}/s {r['rate_objects']:.0f} obj/s" if fresh else "-")
                + (f" (limit {size(r['bandwidth_limit'])}/s)" if r["bandwidth_limit"] else ""),
            )
            for r in report
        ],
    )
    for r in report:
        if r["scan_error"]:
            click.echo(f"{r['id']}: scan failing: {r['scan_error']}")


@replicate.command("backlog")
@click.argument("path", metavar="ALIAS/BUCKET")
@click.option("--id", "policy_id")
@click.option("--failed", "only_failed", is_flag=True, help="Only failed tasks.")
@click.option("--limit", type=click.IntRange(1, 100000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def backlog(
    ctx: Context, path: str, policy_id: str | None, only_failed: bool, limit: int, as_json: bool
) -> None:
    """Unreplicated tasks with their last error."""
    states = [TaskState.FAILED] if only_failed else list(TaskState)

    async def work(state: State) -> list[Any]:
        tasks = []
        for p in select(await state.store.all(), path, policy_id):
            tasks += await state.queue.tasks(p.id, states, limit=limit)
        return tasks[:limit]

    tasks = with_state(ctx, work)
    rows = [
        {
            "id": t.id,
            "policy": t.policy,
            "state": t.state.value,
            "op": t.op.value,
            "key": t.key,
            "version_id": t.version_id,
            "size": t.size,
            "attempts": t.attempts,
            "next_attempt": t.next_at if t.state is TaskState.RETRYING else None,
            "error_class": t.error_class,
            "last_error": t.last_error,
        }
        for t in tasks
    ]
    if as_json:
        emit_json(rows)
        return
    table(
        ("ID", "STATE", "OP", "KEY", "SIZE", "ATTEMPTS", "LAST ERROR"),
        [
            (
                r["id"],
                r["state"],
                r["op"],
                r["key"],
                size(r["size"]),
                r["attempts"],
                r["last_error"] or "-",
            )
            for r in rows
        ],
    )


@replicate.command("retry")
@click.argument("task_ids", nargs=-1, type=int)
@click.option("--id", "policy_id")
@click.option("--all", "retry_all", is_flag=True, help="Every failed task (of --id, if given).")
@click.pass_obj
def retry(ctx: Context, task_ids: tuple[int, ...], policy_id: str | None, retry_all: bool) -> None:
    """Queue failed tasks again, with a fresh attempt budget."""
    if bool(task_ids) == retry_all:
        raise UserError("give task ids or --all")

    async def work(state: State) -> int:
        if policy_id:
            await state.store.get(policy_id)
        if task_ids:
            found = {
                t.id
                for t in await state.queue.tasks(
                    policy_id, [TaskState.FAILED, TaskState.RETRYING], limit=100000
                )
                if t.id in task_ids
            }
            missing = sorted(set(task_ids) - found)
            if missing:
                listed = ", ".join(map(str, missing[:10]))
                raise UserError(f"no failed or retrying task with id {listed}")
        return await state.queue.requeue(policy_id, task_ids)

    click.echo(f"{with_state(ctx, work)} task(s) queued again.")


def _pause_command(paused: bool) -> Callable[..., None]:
    @click.option("--id", "policy_id", help="One policy (default: the whole engine).")
    @click.pass_obj
    def command(ctx: Context, policy_id: str | None) -> None:
        with_state(ctx, lambda state: state.store.set_paused(paused, policy_id))
        what = f"policy {policy_id}" if policy_id else "engine"
        click.echo(f"Replication {'paused' if paused else 'resumed'} for {what}.")

    return command


replicate.command("pause", help="Stop transfers (detection goes on).")(_pause_command(True))
replicate.command("resume", help="Resume transfers.")(_pause_command(False))


@replicate.command("diff")
@click.argument("path", metavar="ALIAS/BUCKET")
@click.option("--id", "policy_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def diff(ctx: Context, path: str, policy_id: str | None, as_json: bool) -> None:
    """Compare source and target listings, independently of the queue.

    Exit status: 0 in sync, 1 differences found, 2 error.
    """
    try:
        result = with_state(ctx, lambda state: _diff(state, path, policy_id))
    except UserError as exc:
        click.echo(f"mirrorline: error: {exc.reason}", err=True)
        raise SystemExit(2) from None
    if as_json:
        emit_json(result)
    else:
        for entry in result:
            click.echo(
                f"{entry['policy']}  {entry['status']:<16} {entry['key']}  {entry['detail']}"
            )
        if not result:
            click.echo("In sync.")
    raise SystemExit(1 if result else 0)


async def _diff(state: State, path: str, policy_id: str | None) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for policy in select(await state.store.all(), path, policy_id):
        out += [d.__dict__ | {"policy": policy.id} for d in await diff_policy(policy, state.book)]
    return out
