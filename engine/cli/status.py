"""`mirrorline replicate status|backlog|retry|pause|resume`: how replication is doing."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any, TypeVar

import click

from engine.cli.context import Context, remote_options, with_service
from engine.cli.output import age, emit_json, say, size, table
from engine.cli.policies import replicate, select
from engine.errors import UserError
from engine.model import FailureGroup, Task, TaskState
from engine.printable import printable
from engine.service import MAX_PAGE, Service, group_dict
from engine.telemetry.snapshot import Cluster, Latency, PolicyStats, Snapshot

T = TypeVar("T")


def status_row(p: PolicyStats, snap: Snapshot) -> dict[str, Any]:
    """One policy as `status --json` shows it: the snapshot, flattened for scripts."""
    live = snap.engine.running
    links = {link.alias: link for link in snap.links}
    hour = p.latency.get("1h", {}).get("all", Latency())
    b = p.backlog
    return {
        "id": p.id,
        "source": p.source,
        "target": p.target,
        "state": p.state,
        "hold": p.hold,
        "replicated": b.replicated,
        "replicated_bytes": b.replicated_bytes,
        "skipped": b.skipped,
        "pending": b.pending,
        "pending_bytes": b.pending_bytes,
        "in_flight": b.in_flight,
        "in_flight_bytes": b.in_flight_bytes,
        "retrying": b.retrying,
        "retrying_bytes": b.retrying_bytes,
        "failed": b.failed,
        "failed_bytes": b.failed_bytes,
        "lag_seconds": b.oldest_pending_age,
        "latency_p50": hour.p50,
        "latency_p99": hour.p99,
        "rate_bytes": p.rate.current_bytes if live else 0.0,
        "rate_objects": p.rate.current_objects if live else 0.0,
        "peak_bytes": p.rate.peak_bytes,
        "sent_bytes_total": p.sent_bytes_total,
        "bandwidth_limit": p.bandwidth_limit,
        "errors_last_hour": sum(p.errors.last_hour.values()),
        "errors_total": sum(p.errors.total.values()),
        "target_online": links[p.target_alias].online if p.target_alias in links else None,
        "scans": p.scans,
        "last_scan_at": p.last_scan_at,
        "scan_error": p.scan_error,
    }


@replicate.command("status")
@click.argument("path", required=False, metavar="[ALIAS/BUCKET]")
@click.option("--json", "as_json", is_flag=True)
@remote_options
@click.pass_obj
def status(
    ctx: Context, path: str | None, as_json: bool, connect: str | None, token: str | None
) -> None:
    """Per policy: replicated, pending, in flight, retrying, failed, lag and rate."""
    snap = with_service(ctx, connect, token, lambda service: service.status())
    report = [status_row(p, snap) for p in select(snap.policies, path, None)]
    running, paused, problem = snap.engine.running, snap.engine.paused, snap.engine.config_error
    if as_json:
        cluster = dataclasses.asdict(snap.cluster) if snap.cluster else None
        emit_json(
            {
                "engine_running": running,
                "engine_paused": paused,
                "config_error": problem,
                "policies": report,
                "cluster": cluster,
            }
        )
        return
    click.echo(f"engine: {'running' if running else 'not running'}{', paused' if paused else ''}")
    if problem and running:
        click.echo(f"configuration error (the last good one is in use): {printable(problem)}")
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
                printable(r["hold"] or r["state"]),
                f"{r['replicated']} ({size(r['replicated_bytes'])})",
                f"{r['pending']} ({size(r['pending_bytes'])})",
                r["in_flight"],
                r["retrying"],
                r["failed"],
                age(r["lag_seconds"]) if r["pending"] else "-",
                (f"{size(r['rate_bytes'])}/s {r['rate_objects']:.0f} obj/s" if running else "-")
                + (f" (limit {size(r['bandwidth_limit'])}/s)" if r["bandwidth_limit"] else ""),
            )
            for r in report
        ],
    )
    for r in report:
        if r["scan_error"]:
            say(f"{r['id']}: scan failing: {r['scan_error']}")
    if snap.cluster:
        show_cluster(snap.cluster)


def show_cluster(c: Cluster) -> None:
    """The engines sharing the queue: one row each, then the totals of those up."""
    say(
        f"\ncluster: {c.up} node{'s' if c.up != 1 else ''} up of {len(c.nodes)}, "
        f"{c.workers} workers, {c.in_flight} in flight, {size(c.rate)}/s"
    )
    now = time.time()
    table(
        ("NODE", "HOST", "PID", "STATE", "HEARTBEAT", "WORKERS", "IN FLIGHT", "RATE", "COPIED"),
        [
            (
                printable(n.id),
                printable(n.host),
                n.pid,
                n.state,
                f"{age(max(0.0, now - n.heartbeat_at))} ago",
                n.workers,
                n.in_flight,
                f"{size(n.rate)}/s",
                f"{n.replicated} ({size(n.replicated_bytes)})",
            )
            for n in c.nodes
        ],
    )


@replicate.command("backlog")
@click.argument("path", metavar="ALIAS/BUCKET")
@click.option("--id", "policy_id")
@click.option("--failed", "only_failed", is_flag=True, help="Only failed tasks.")
@click.option(
    "--by",
    type=click.Choice(["reason", "cause"]),
    help="With --failed: one line per cause (policy, operation, error class, reason code), "
    "failed and retrying tasks counted.",
)
@click.option("--limit", type=click.IntRange(1, 100000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@remote_options
@click.pass_obj
def backlog(
    ctx: Context,
    path: str,
    policy_id: str | None,
    only_failed: bool,
    by: str | None,
    limit: int,
    as_json: bool,
    connect: str | None,
    token: str | None,
) -> None:
    """Unreplicated tasks with their last error (--failed --by reason: grouped by cause)."""
    if by:
        if not only_failed:
            raise UserError("--by groups failures: give --failed too")
        _by_cause(ctx, path, policy_id, as_json, connect, token)
        return
    states = [TaskState.FAILED] if only_failed else list(TaskState)

    async def work(service: Service) -> list[Task]:
        tasks: list[Task] = []
        for p in select((await service.status()).policies, path, policy_id):
            after: int | None = 0
            while after is not None and len(tasks) < limit:
                page = await service.tasks(states, p.id, min(MAX_PAGE, limit - len(tasks)), after)
                tasks += page.tasks
                after = page.next
        return tasks[:limit]

    tasks = with_service(ctx, connect, token, work)
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
                printable(r["key"]),
                size(r["size"]),
                r["attempts"],
                printable(r["last_error"]) or "-",
            )
            for r in rows
        ],
    )


def _by_cause(
    ctx: Context,
    path: str,
    policy_id: str | None,
    as_json: bool,
    connect: str | None,
    token: str | None,
) -> None:
    async def work(service: Service) -> list[FailureGroup]:
        chosen = {p.id for p in select((await service.status()).policies, path, policy_id)}
        return [g for g in await service.failure_groups() if g.cause.policy in chosen]

    groups = with_service(ctx, connect, token, work)
    if as_json:
        emit_json([group_dict(g) for g in groups])
        return
    table(
        ("REASON", "OP", "POLICY", "CLASS", "TASKS", "FAILED", "SIZE", "FIRST", "LAST", "EXAMPLE"),
        [
            (
                printable(g.cause.code) or "-",
                g.cause.op.value.upper(),
                g.cause.policy,
                g.cause.error_class,
                f"{g.count} tasks",
                g.failed,
                size(g.bytes),
                f"first {_clock(g.first_seen)}",
                f"last {_clock(g.last_seen)}",
                f"{printable(g.example_key)}: {printable(g.example_error)}",
            )
            for g in groups
        ],
    )


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


@replicate.command("retry")
@click.argument("task_ids", nargs=-1, type=int)
@click.option("--id", "policy_id")
@click.option("--all", "retry_all", is_flag=True, help="Every failed task (of --id, if given).")
@remote_options
@click.pass_obj
def retry(
    ctx: Context,
    task_ids: tuple[int, ...],
    policy_id: str | None,
    retry_all: bool,
    connect: str | None,
    token: str | None,
) -> None:
    """Queue failed tasks again, with a fresh attempt budget."""
    if bool(task_ids) == retry_all:
        raise UserError("give task ids or --all")
    count = with_service(ctx, connect, token, lambda s: s.retry(task_ids, policy_id))
    click.echo(f"{count} task(s) queued again.")


def _pause_command(paused: bool) -> Callable[..., None]:
    @click.option("--id", "policy_id", help="One policy (default: the whole engine).")
    @remote_options
    @click.pass_obj
    def command(
        ctx: Context, policy_id: str | None, connect: str | None, token: str | None
    ) -> None:
        with_service(ctx, connect, token, lambda s: s.set_paused(paused, policy_id))
        what = f"policy {policy_id}" if policy_id else "engine"
        click.echo(f"Replication {'paused' if paused else 'resumed'} for {what}.")

    return command


replicate.command("pause", help="Stop transfers (detection goes on).")(_pause_command(True))
replicate.command("resume", help="Resume transfers.")(_pause_command(False))
