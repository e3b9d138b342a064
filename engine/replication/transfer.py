"""Carry out one task against the target: copy a version, mirror a delete, sync tags.

A copy streams: objects up to `part_size` go in one PUT; larger ones go
through multipart, their parts drawn from one engine-wide budget (`part_slots`),
so memory stays under workers x part_size + budget x part_size, never the
whole object. Every replica carries its origin (endpoint, bucket, version,
ETag) in metadata: that makes a repeated copy a no-op and stops a replica
from travelling back to where it came from.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import quote

from engine.errors import NotFoundError, PermanentError, TransientError, first_error
from engine.model import Completion, Op, Outcome, Task
from engine.policy import Policy
from engine.replication.bandwidth import TokenBucket
from engine.s3 import ObjectHead, ObjectStore, Stream
from engine.s3.origin import (
    COPIED_HEADERS,
    ORIGIN,
    ORIGIN_ETAG,
    ORIGIN_VERSION,
    came_from,
    replica_of,
)

MiB = 1024 * 1024
STREAM_CHUNK = 64 * 1024  # bodies above this are sent (and counted, and paced) in chunks
Progress = Callable[[int], None]
T = TypeVar("T")


@dataclass
class TransferContext:
    policy: Policy
    source: ObjectStore
    target: ObjectStore
    source_origin: str  # "host:port/bucket" of the policy's source
    target_origin: str  # "host:port/bucket" of the policy's target
    part_size: int = 8 * MiB
    part_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(4))
    on_bytes: Callable[[int], None] = lambda n: None
    limit: TokenBucket | None = None  # the policy's --bandwidth, shared by its transfers


async def execute(
    task: Task,
    ctx: TransferContext,
    newest: tuple[float, int] | None = None,
    progress: Progress = lambda n: None,
) -> Completion:
    """Run one task; errors propagate as MirrorlineError values for the scheduler.

    `newest` is (source mtime, seq) of the newest version of this key already on
    the target, from the replica map: an older version never overwrites it.
    `progress` hears of this task's bytes as they go out.
    """
    if task.op is Op.DELETE_VERSION:
        return await _delete_version(task, ctx)
    if task.op is Op.METADATA:
        return await _sync_tags(task, ctx)
    if newest is not None and newest > (task.src_mtime, task.seq):
        return Completion(task, Outcome.SKIPPED, target_version="", note="superseded")
    if task.op is Op.DELETE_MARKER:
        version, _ = await ctx.target.delete(ctx.policy.target_bucket, task.key)
        return Completion(task, Outcome.REPLICATED, target_version=version)
    if task.target_has_key:
        held = await _target_holds(task, ctx)
        if held:
            return Completion(task, Outcome.ALREADY, target_version=held)
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


async def _target_holds(task: Task, ctx: TransferContext) -> str:
    """Version id of a target replica of exactly this source version, or ''."""
    try:
        head = await ctx.target.head(ctx.policy.target_bucket, task.key)
    except NotFoundError:
        return ""
    return head.version_id if await replica_of(head, ctx.source_origin) == task.version_id else ""


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
            yield piece  # type: ignore[misc]  # aiohttp writes any bytes-like
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
        if head.size <= ctx.part_size:
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
        else:
            version = await _multipart(task, ctx, head, stream, headers, progress)
    return Completion(task, Outcome.REPLICATED, bytes=head.size, target_version=version)


async def _multipart(
    task: Task,
    ctx: TransferContext,
    head: ObjectHead,
    stream: Stream,
    headers: dict[str, str],
    progress: Progress,
) -> str:
    bucket = ctx.policy.target_bucket
    upload = await ctx.target.create_multipart(bucket, task.key, headers)
    slots = ctx.part_slots
    etags: dict[int, str] = {}
    held = 0  # part slots taken for this upload and not given back yet

    async def send(number: int, body: bytes) -> None:
        nonlocal held
        try:
            md5 = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
            etags[number] = await _upload(
                ctx,
                progress,
                body,
                lambda data: ctx.target.upload_part(
                    bucket, task.key, upload, number, data, md5, len(body)
                ),
            )
        finally:
            held -= 1
            slots.release()

    try:
        try:
            async with asyncio.TaskGroup() as group:
                remaining, number = head.size, 0
                while remaining > 0:
                    await slots.acquire()  # shared by all transfers: bounds memory
                    held += 1
                    body = await stream.readexactly(min(ctx.part_size, remaining))
                    remaining -= len(body)
                    number += 1
                    group.create_task(send(number, body))
        except BaseExceptionGroup as failed:
            # One error with its class, as from a single PUT: the dispatcher decides on it
            # (and the source client maps a broken body read) by class, never on a group.
            raise first_error(failed) from None
        finally:
            # A part whose read failed, or whose task was cancelled before it started,
            # still holds its slot: the budget is engine-wide, a lost slot is lost for good.
            for _ in range(held):
                slots.release()
        parts = [etags[n] for n in range(1, number + 1)]
        version, _ = await ctx.target.complete_multipart(bucket, task.key, upload, parts)
    except BaseException:
        await asyncio.shield(_abort(ctx.target, bucket, task.key, upload))
        raise
    return version


async def _abort(target: ObjectStore, bucket: str, key: str, upload: str) -> None:
    # Best effort: an upload left behind is invisible, and lifecycle rules reap it.
    with contextlib.suppress(Exception):
        await target.abort_multipart(bucket, key, upload)


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
    await ctx.target.put_tags(policy.target_bucket, task.key, task.target_version, tags)
    return Completion(task, Outcome.REPLICATED)
