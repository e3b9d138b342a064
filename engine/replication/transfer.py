"""Carry out one task against the target: copy a version, mirror a delete, sync tags.

A copy up to `stream_from` is read whole and sent in one PUT; a larger one is
streamed (streaming.py: one PUT, or multipart above `multipart_from`), so memory
stays under workers x stream_from plus a socket buffer per stream, never a
whole object or part. Every replica carries its origin (endpoint, bucket,
version, ETag) in metadata: that makes a repeated copy a no-op and stops a
replica from travelling back to where it came from.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar
from urllib.parse import quote

from engine.errors import NotFoundError, PermanentError, TransientError
from engine.model import Completion, Newest, Op, Outcome, Task
from engine.replication.context import TransferContext
from engine.replication.rerun import held
from engine.replication.streaming import multipart, stream_put
from engine.s3 import ObjectHead
from engine.s3.listing import key_versions
from engine.s3.origin import (
    COPIED_HEADERS,
    ORIGIN,
    ORIGIN_ETAG,
    ORIGIN_VERSION,
    came_from,
)

__all__ = ["TransferContext", "execute"]

MiB = 1024 * 1024
STREAM_CHUNK = 64 * 1024  # bodies above this are sent (and counted, and paced) in chunks
Progress = Callable[[int], None]
T = TypeVar("T")


async def execute(
    task: Task,
    ctx: TransferContext,
    newest: Newest | None = None,
    progress: Progress = lambda n: None,
) -> Completion:
    """Run one task; errors propagate as MirrorlineError values for the scheduler.

    `newest` is (source mtime, seq, source version) of the newest version of this key
    already on the target, from the replica map: an older version never overwrites it.
    `progress` hears of this task's bytes as they go out.
    """
    if task.op is Op.DELETE_VERSION:
        return await _delete_version(task, ctx)
    if task.op is Op.METADATA:
        return await _sync_tags(task, ctx)
    if newest is not None and await _superseded(task, ctx, newest):
        return Completion(task, Outcome.SKIPPED, target_version="", note="superseded")
    if task.op is Op.DELETE_MARKER:
        return await _delete_marker(task, ctx)
    if task.target_has_key:
        replica = await held(task, ctx)
        if replica:
            return Completion(task, Outcome.ALREADY, target_version=replica)
    try:
        return await _copy(task, ctx, progress)
    except NotFoundError as exc:
        # NoSuchUpload is the target's (a multipart upload reaped mid-copy): not this case
        if exc.code != "NoSuchUpload" and await _still_listed(task, ctx):
            raise PermanentError(
                f"the source lists {task.key!r} (version {task.version_id}) but will not "
                "serve it by that name: the server rewrites characters it cannot list "
                "(control characters); rename the object on the source",
                code="UnservableKey",
            ) from None
        # Deleted on the source before we got to it: nothing to copy. A delete
        # marker or version delete that followed is a task of its own.
        return Completion(task, Outcome.SKIPPED, target_version=None, note="gone at source")


async def _superseded(task: Task, ctx: TransferContext, newest: Newest) -> bool:
    """Is the version already on the target newer than this task's?

    Times in different seconds decide. Within one second they cannot: an event's time
    has milliseconds and a listing's whole seconds, and a key's positions (seq) shift
    between two listings when older versions are removed. So a tie is settled by the
    source's own listing, newest first (one request, only for same-second writes)."""
    mtime, seq, version = newest
    if version == task.version_id:
        return False
    if int(mtime) != int(task.src_mtime):
        return mtime > task.src_mtime
    listed = await key_versions(ctx.source, ctx.policy.source_bucket, task.key)
    order = [v.version_id for v in listed]
    if version in order and task.version_id in order:
        return order.index(version) < order.index(task.version_id)
    return (mtime, seq) > (task.src_mtime, task.seq)


async def _still_listed(task: Task, ctx: TransferContext, most: int = 5000) -> bool:
    """Is the version the source would not serve still in its listing? Then it is not
    gone, it is unreachable by name, and skipping it would only find it again next scan.

    The listing's prefix stops at the first U+FFFD: a server that lists a key with
    a replacement character also matches prefixes against the real name."""
    bucket, prefix = ctx.policy.source_bucket, task.key.partition("\ufffd")[0]
    seen = 0
    async with contextlib.aclosing(ctx.source.list_versions(bucket, prefix)) as pages:
        async for page in pages:
            # No early stop on key order: the server sorts by names it does not list.
            if any((v.key, v.version_id) == (task.key, task.version_id) for v in page):
                return True
            seen += len(page)
            if seen >= most:
                return False
    return False


def _put_headers(head: ObjectHead, tags: dict[str, str], ctx: TransferContext) -> dict[str, str]:
    headers = {name: head.headers[name] for name in COPIED_HEADERS if name in head.headers}
    for name, value in head.metadata.items():
        headers[f"x-amz-meta-{name}"] = value
    if ORIGIN not in head.metadata:  # a replica of a replica keeps its first origin
        headers[f"x-amz-meta-{ORIGIN}"] = ctx.source_origin
        headers[f"x-amz-meta-{ORIGIN_VERSION}"] = head.version_id
        headers[f"x-amz-meta-{ORIGIN_ETAG}"] = head.etag
    if tags:
        headers["x-amz-tagging"] = "&".join(
            f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in tags.items()
        )
    return headers


async def _upload(
    ctx: TransferContext,
    progress: Progress,
    body: bytes,
    send: Callable[[bytes | AsyncIterator[bytes]], Awaitable[T]],
) -> T:
    """Send a body: small ones whole, larger ones in chunks counted as the socket takes them.

    Rates and per-transfer progress then show bytes moving during a long PUT,
    and the bandwidth limit paces chunks instead of whole 8 MiB parts.
    """

    def moved(nbytes: int) -> None:
        ctx.on_bytes(nbytes)
        progress(nbytes)

    if len(body) <= STREAM_CHUNK:
        if ctx.limit is not None:
            await ctx.limit.take(len(body))
        result = await send(body)
        moved(len(body))
        return result

    async def chunks() -> AsyncIterator[bytes]:
        view = memoryview(body)
        for start in range(0, len(body), STREAM_CHUNK):
            piece = view[start : start + STREAM_CHUNK]
            if ctx.limit is not None:
                await ctx.limit.take(len(piece))
            yield piece  # type: ignore[misc]  # the pool writes any bytes-like
            moved(len(piece))

    return await send(chunks())


async def _copy(task: Task, ctx: TransferContext, progress: Progress) -> Completion:
    policy = ctx.policy
    async with ctx.source.get(policy.source_bucket, task.key, task.version_id) as (head, stream):
        if await came_from(head, ctx.target_origin):  # the target's own, under any alias
            return Completion(task, Outcome.SKIPPED, target_version="", note="replica of target")
        tags: dict[str, str] = {}
        if head.tag_count or policy.tags:
            tags = await ctx.source.get_tags(policy.source_bucket, task.key, task.version_id)
            if not policy.matches_tags(tags):
                return Completion(task, Outcome.SKIPPED, target_version="", note="tag filter")
        headers = _put_headers(head, tags, ctx)
        if head.size <= ctx.stream_from:
            body = await stream.readexactly(head.size) if head.size else b""
            digest = hashlib.md5(body, usedforsecurity=False)
            if "-" not in head.etag and head.etag and digest.hexdigest() != head.etag:
                raise TransientError(f"GET {task.key}: content does not match the source ETag")
            headers["Content-MD5"] = base64.b64encode(digest.digest()).decode()
            headers["Content-Length"] = str(len(body))
            version, _ = await _upload(
                ctx,
                progress,
                body,
                lambda data: ctx.target.put(policy.target_bucket, task.key, data, headers),
            )
        elif head.size <= ctx.multipart_from:
            version = await stream_put(task, ctx, head, stream, headers, progress)
        else:
            version = await multipart(task, ctx, head, stream, headers, progress)
    return Completion(task, Outcome.REPLICATED, bytes=head.size, target_version=version)


async def _delete_marker(task: Task, ctx: TransferContext) -> Completion:
    """Mirror a delete, unless the key's latest version on the target is a delete marker.

    A delete is not idempotent on a versioned bucket: a task re-run after a crash (its
    marker made, its completion never recorded) would stack a second marker."""
    bucket = ctx.policy.target_bucket
    listing = ctx.target.list_versions(bucket, prefix=task.key, page_size=1)
    async with contextlib.aclosing(listing):
        async for page in listing:  # the key itself sorts before every longer key
            latest = page[0]
            if latest.key == task.key and latest.is_delete_marker:
                return Completion(task, Outcome.ALREADY, target_version=latest.version_id)
            break
    version, _ = await ctx.target.delete(bucket, task.key)
    return Completion(task, Outcome.REPLICATED, target_version=version)


async def _delete_version(task: Task, ctx: TransferContext) -> Completion:
    try:
        await ctx.target.delete(ctx.policy.target_bucket, task.key, task.target_version)
    except NotFoundError:
        return Completion(task, Outcome.ALREADY, target_version="")
    return Completion(task, Outcome.REPLICATED, target_version="")


async def _sync_tags(task: Task, ctx: TransferContext) -> Completion:
    policy = ctx.policy
    try:
        tags = await ctx.source.get_tags(policy.source_bucket, task.key, task.version_id)
    except NotFoundError:
        return Completion(task, Outcome.SKIPPED, note="gone at source")
    try:
        await ctx.target.put_tags(policy.target_bucket, task.key, task.target_version, tags)
    except NotFoundError:
        # The replica this task was queued for is gone (its bucket emptied and made again,
        # the version deleted by hand): every retry would fail the same way. A scan copies
        # a lost replica again, tags and all, and the tag sweep checks the new one's.
        return Completion(task, Outcome.SKIPPED, note="replica gone from the target")
    return Completion(task, Outcome.REPLICATED)
