"""`mirrorline replicate verify`: read both copies and say exactly what differs.

Exit status follows `replicate diff`: 0 all match, 1 differences found, 2 any
error, including a mistyped option, since 1 already means "differences".
"""

from __future__ import annotations

import random
import sys
from typing import Any, NoReturn

import click

from engine.checks.verify import PolicyReport, verify_policy
from engine.cli.context import Context
from engine.cli.output import emit_json
from engine.cli.policies import State, replicate, select, with_state
from engine.errors import MirrorlineError
from engine.policy import parse_path


def _fail(message: str) -> NoReturn:
    click.echo(f"mirrorline: error: {message}", err=True)
    raise SystemExit(2)


def _printable(key: str) -> str:
    """One line per difference, even for a key with a newline in it."""
    return repr(key) if any(ord(ch) < 32 or ord(ch) == 127 for ch in key) else key


class _Command(click.Command):
    """The group turns usage mistakes into exit 1, which here would read as "differences"."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx else "mirrorline replicate verify"
            _fail(f"{' '.join(exc.format_message().split())} (see `{where} --help`)")


@replicate.command("verify", cls=_Command)
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
@click.pass_obj
def verify(
    ctx: Context,
    path: str,
    policy_id: str | None,
    sample: int | None,
    seed: int | None,
    concurrency: int,
    as_json: bool,
) -> None:
    """Download source and target copies and compare content (SHA-256), size,
    copied headers, user metadata and tags.

    A full run also lists keys still live on the target after a delete on the
    source (when the policy replicates delete markers); --sample checks source
    keys only. Exit status: 0 all match, 1 differences found, 2 error.
    """
    rng = random.Random(seed)

    async def work(state: State) -> list[PolicyReport]:
        alias, _ = parse_path(path, "ALIAS/BUCKET")
        state.book.get(alias)  # "unknown alias" says more than "no policy"
        reports = []
        for policy in select(await state.store.all(), path, policy_id):
            reports.append(
                await verify_policy(
                    policy, state.book, sample=sample, rng=rng, concurrency=concurrency
                )
            )
        return reports

    try:
        reports: list[PolicyReport] = with_state(ctx, work)
    except MirrorlineError as exc:
        _fail(exc.reason)
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
                        "id": r.policy.id,
                        "source": r.policy.source,
                        "target": r.policy.target,
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
