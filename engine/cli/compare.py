"""`mirrorline replicate diff | verify`: compare both buckets and say exactly what differs.

diff compares listings, verify reads both copies; both run where the service
runs (on the engine's host with --connect). Exit status: 0 all match, 1
differences found, 2 any error, including a mistyped option, since 1 already
means "differences".
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import click

from engine.aliases import unknown_alias
from engine.checks.report import Difference, PolicyReport
from engine.cli.context import Context, remote_options, with_service
from engine.cli.output import emit_json
from engine.cli.policies import replicate, select
from engine.errors import MirrorlineError
from engine.policy import parse_path
from engine.service import Service

T = TypeVar("T")


def fail(message: str) -> NoReturn:
    click.echo(f"mirrorline: error: {message}", err=True)
    raise SystemExit(2)


def _printable(key: str) -> str:
    """One line per difference, even for a key with a newline in it."""
    return repr(key) if any(ord(ch) < 32 or ord(ch) == 127 for ch in key) else key


class CheckCommand(click.Command):
    """The group turns usage mistakes into exit 1, which here would read as "differences"."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx else f"mirrorline replicate {self.name}"
            fail(f"{' '.join(exc.format_message().split())} (see `{where} --help`)")


def run_check(
    ctx: Context,
    connect: str | None,
    token: str | None,
    work: Callable[[Service], Awaitable[T]],
) -> T:
    """`work` on the service; any failure is exit 2."""
    try:
        return with_service(ctx, connect, token, work)
    except MirrorlineError as exc:
        fail(exc.reason)


@replicate.command("diff", cls=CheckCommand)
@click.argument("path", metavar="ALIAS/BUCKET")
@click.option("--id", "policy_id")
@click.option("--json", "as_json", is_flag=True)
@remote_options
@click.pass_obj
def diff(
    ctx: Context,
    path: str,
    policy_id: str | None,
    as_json: bool,
    connect: str | None,
    token: str | None,
) -> None:
    """Compare source and target listings, independently of the queue.

    Exit status: 0 in sync, 1 differences found, 2 error.
    """

    async def work(service: Service) -> list[Difference]:
        found: list[Difference] = []
        for policy in select(await service.policies(), path, policy_id):
            found += await service.diff(policy.id)
        return found

    result = run_check(ctx, connect, token, work)
    if as_json:
        emit_json([d.__dict__ for d in result])
    else:
        for d in result:
            click.echo(f"{d.policy}  {d.status:<16} {d.key}  {d.detail}")
        if not result:
            click.echo("In sync.")
    raise SystemExit(1 if result else 0)


@replicate.command("verify", cls=CheckCommand)
@click.argument("path", metavar="ALIAS/BUCKET")
@click.option("--id", "policy_id", help="Only this policy.")
@click.option(
    "--sample",
    type=click.IntRange(min=1),
    metavar="N",
    help="Check N source keys drawn uniformly at random, per policy (default: every key).",
)
@click.option("--seed", type=int, help="Seed for --sample, to draw the same keys again.")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 256),
    default=8,
    show_default=True,
    help="Keys compared at once (each reads its source and target copy).",
)
@click.option("--json", "as_json", is_flag=True)
@remote_options
@click.pass_obj
def verify(
    ctx: Context,
    path: str,
    policy_id: str | None,
    sample: int | None,
    seed: int | None,
    concurrency: int,
    as_json: bool,
    connect: str | None,
    token: str | None,
) -> None:
    """Download source and target copies and compare content (SHA-256), size,
    copied headers, user metadata and tags.

    A full run also lists keys still live on the target after a delete on the
    source (when the policy replicates delete markers); --sample checks source
    keys only. Exit status: 0 all match, 1 differences found, 2 error.
    """

    async def work(service: Service) -> list[PolicyReport]:
        alias, _ = parse_path(path, "ALIAS/BUCKET")
        if alias not in {a["name"] for a in await service.aliases()}:
            raise unknown_alias(alias)  # says more than "no policy"
        return [
            await service.verify(policy.id, sample, seed, concurrency)
            for policy in select(await service.policies(), path, policy_id)
        ]

    reports = run_check(ctx, connect, token, work)
    checked = sum(r.checked for r in reports)
    skipped = sum(r.skipped for r in reports)
    differences = [d for r in reports for d in r.differences]
    if as_json:
        emit_json(
            {
                "checked": checked,
                "differ": len(differences),
                "skipped": skipped,
                "sample": sample,
                "policies": [
                    {
                        "id": r.policy,
                        "source": r.source,
                        "target": r.target,
                        "checked": r.checked,
                        "differ": len(r.differences),
                        "skipped": r.skipped,
                    }
                    for r in reports
                ],
                "differences": [d.__dict__ for d in differences],
            }
        )
    else:
        for d in differences:
            click.echo(f"{d.policy}  {d.status:<8} {_printable(d.key)}  {d.detail}")
        note = (
            f" ({skipped} skipped: outside the tag filter, or deleted meanwhile)" if skipped else ""
        )
        click.echo(f"checked {checked} objects: {len(differences)} differ{note}")
    sys.exit(1 if differences else 0)
