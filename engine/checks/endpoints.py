"""Checks that need the endpoints: does this alias work, can this policy run?

Each failure is a UserError with one line that says what to fix, raised
before anything is written.
"""

from __future__ import annotations

import asyncio

from engine.aliases import Alias, AliasBook
from engine.errors import AccessDeniedError, MirrorlineError, UserError
from engine.policy import Policy
from engine.s3.control import NOT_S3, ControlClient
from engine.s3.identity import place_of


async def check_alias(alias: Alias) -> None:
    try:
        await ControlClient(alias, timeout=5).check()
    except MirrorlineError as exc:
        if isinstance(exc, AccessDeniedError):
            raise UserError(
                f"alias {alias.name}: credentials rejected by {alias.url} ({exc.code})"
            ) from None
        if exc.retryable:
            raise UserError(f"alias {alias.name}: {alias.url} does not answer") from None
        if exc.code == NOT_S3:
            detail = exc.reason.partition("not an S3 answer ")[2]  # "(HTTP 404, text/html)"
            raise UserError(
                f"alias {alias.name}: {alias.url} is not an S3 endpoint {detail}"
            ) from None
        raise UserError(f"alias {alias.name}: {exc.reason}") from None


async def _bucket_ready(alias: Alias, bucket: str, side: str) -> None:
    control = ControlClient(alias, timeout=5)
    try:
        if not await control.bucket_exists(bucket):
            raise UserError(f"{side} bucket {alias.name}/{bucket} does not exist")
        status = await control.versioning(bucket)
    except UserError:
        raise
    except MirrorlineError as exc:
        if exc.retryable:
            raise UserError(f"{side} {alias.name} ({alias.url}) does not answer") from None
        if isinstance(exc, AccessDeniedError):
            raise UserError(
                f"{side} {alias.name}/{bucket}: access refused by {alias.url} ({exc.code}); "
                f"check the keys of alias {alias.name} and its rights on the bucket"
            ) from None
        raise UserError(f"{side} {exc.reason}") from None  # the reason names alias/bucket
    if status != "Enabled":
        raise UserError(
            f"versioning is not enabled on {side} bucket {alias.name}/{bucket} "
            f"(status: {status}); replication needs it on both buckets"
        )


async def check_policy(policy: Policy, book: AliasBook) -> None:
    """Aliases known, buckets present and versioned on both sides, source is not target
    (by what the URLs resolve to: engine.s3.identity)."""
    source, target = book.get(policy.source_alias), book.get(policy.target_alias)
    here = await place_of(source, policy.source_bucket)
    there = await place_of(target, policy.target_bucket)
    if here.same(there):
        shown = "" if policy.source == policy.target else f" as {policy.target}"
        raise UserError(
            f"source and target are the same bucket: {policy.source}{shown} "
            f"(both reach {source.url}/{policy.source_bucket})"
        )
    await asyncio.gather(
        _bucket_ready(source, policy.source_bucket, "source"),
        _bucket_ready(target, policy.target_bucket, "target"),
    )
