"""`mirrorline replicate explain ALIAS/BUCKET/KEY`: why is this object (not) on the target?

The verdict line first, then the evidence (engine.checks.explanation writes
both, so the console shows the same text). Exit status as for `diff`: 0 in
sync, 1 any other verdict, 2 an error (a mistyped path included).
"""

from __future__ import annotations

import click

from engine.checks.explanation import Explanation
from engine.cli.compare import CheckCommand, fail, run_check
from engine.cli.context import Context, remote_options
from engine.cli.output import emit_json
from engine.cli.policies import replicate
from engine.printable import printable


def split_path(value: str) -> tuple[str, str]:
    """'ALIAS/BUCKET/KEY' -> ('ALIAS/BUCKET', 'KEY'); the key keeps its own slashes."""
    alias, _, rest = value.partition("/")
    bucket, _, key = rest.partition("/")
    if not alias or not bucket or not key:
        fail(f"expected ALIAS/BUCKET/KEY, got {printable(value)!r}")
    return f"{alias}/{bucket}", key


@replicate.command("explain", cls=CheckCommand)
@click.argument("path", metavar="ALIAS/BUCKET/KEY")
@click.option("--json", "as_json", is_flag=True)
@remote_options
@click.pass_obj
def explain(ctx: Context, path: str, as_json: bool, connect: str | None, token: str | None) -> None:
    """Why KEY is or is not on the target: a verdict, then the evidence.

    Verdicts: in sync, pending, failed, waiting, missing, not covered, source lacks key.
    Exit status: 0 in sync, 1 otherwise, 2 error.
    """
    source, key = split_path(path)
    found: Explanation = run_check(ctx, connect, token, lambda s: s.explain(source, key))
    if as_json:
        emit_json(found.to_dict())
    else:
        for line in found.lines():
            click.echo(line)
    raise SystemExit(0 if found.in_sync else 1)
