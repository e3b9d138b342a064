"""Objects too large to hold: the source GET streamed straight into the target.

    size <= multipart_from   one PUT, its body the GET's, piece by piece
    larger                   multipart: part 1 from that GET, every other part a ranged
                             GET streamed into its part upload, all at once as far as
                             the engine-wide ByteBudget allows

Nothing is held whole: a transfer in flight holds one piece (STREAM_CHUNK) and a
socket's read buffer per stream, whatever the object's size. Each byte is
checked once, by the target, with the cheapest digest it verifies: a source
ETag that is a plain MD5 goes as Content-MD5 (we hash nothing, and the target
proves the bytes are the source's); a body with no known digest (a multipart
source, or a part of ours) goes with a CRC32 trailer (engine/s3/chunked.py).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from engine.errors import MirrorlineError, NotFoundError, TransientError, first_error
from engine.model import Task
from engine.replication.context import TransferContext
from engine.s3 import ObjectHead, ObjectStore, Stream
from engine.s3.chunked import STREAM_CHUNK
from engine.shielded import shielded

T = TypeVar("T")
Progress = Callable[[int], None]
REFUSED_DIGESTS = frozenset({"BadDigest", "InvalidDigest", "XAmzContentChecksumMismatch"})


def content_md5(etag: str) -> str:
    """Content-MD5 (base64) of a body whose ETag is a plain MD5; '' for any other ETag."""
    try:
        return base64.b64encode(bytes.fromhex(etag)).decode() if len(etag) == 32 else ""
    except ValueError:
        return ""


class _Pieces:
    """The next `length` bytes of a stream, paced and counted.

    `exact`: each piece STREAM_CHUNK long, the last one shorter (an aws-chunked body's
    framing needs it: the pieces are joined to that size). Otherwise each piece is what
    the socket gave, up to STREAM_CHUNK, passed on uncopied.

    The target request consuming them fails with a connection error of its own when
    a read breaks off; `failure` keeps the source's error, so the task is retried as
    a source fault and the target's link is not marked down for it.
    """

    def __init__(
        self, ctx: TransferContext, stream: Stream, length: int, progress: Progress, exact: bool
    ):
        self._ctx, self._stream, self._length, self._progress = ctx, stream, length, progress
        self._exact = exact
        self.failure: BaseException | None = None

    async def __aiter__(self) -> AsyncIterator[bytes | memoryview]:
        ctx, left = self._ctx, self._length
        while left:
            want = min(STREAM_CHUNK, left)
            try:
                if self._exact:
                    piece = await self._stream.readexactly(want)
                elif not (piece := await self._stream.read_some(want)):
                    raise asyncio.IncompleteReadError(b"", left)
            except Exception as exc:
                self.failure = exc
                raise
            size = len(piece)
            if ctx.limit is not None:
                await ctx.limit.take(size)
            yield piece
            left -= size
            ctx.on_bytes(size)
            self._progress(size)


async def _streamed(
    task: Task,
    ctx: TransferContext,
    pieces: _Pieces,
    send: Callable[[AsyncIterator[bytes | memoryview]], Awaitable[T]],
) -> T:
    try:
        return await send(aiter(pieces))
    except MirrorlineError as exc:
        if pieces.failure is not None:
            raise _source_fault(task, ctx, pieces.failure) from None
        if exc.code in REFUSED_DIGESTS:
            raise TransientError(
                f"PUT {task.key}: content does not match the source ETag ({exc.code})",
                code=exc.code,
            ) from None
        raise


def _source_fault(task: Task, ctx: TransferContext, exc: BaseException) -> MirrorlineError:
    if isinstance(exc, MirrorlineError):
        return exc
    return TransientError(
        f"GET {task.key}: the body broke off: {type(exc).__name__}: {exc}",
        code="Connection",
        endpoint=ctx.source.endpoint,
    )


async def stream_put(
    task: Task,
    ctx: TransferContext,
    head: ObjectHead,
    stream: Stream,
    headers: dict[str, str],
    progress: Progress,
) -> str:
    """One PUT fed by the GET; returns the new version id."""
    headers["Content-Length"] = str(head.size)
    md5 = content_md5(head.etag)
    if md5:
        headers["Content-MD5"] = md5
    bucket = ctx.policy.target_bucket
    pieces = _Pieces(ctx, stream, head.size, progress, exact=not md5)
    version, _ = await _streamed(
        task, ctx, pieces, lambda body: ctx.target.put(bucket, task.key, body, headers)
    )
    return version


async def multipart(
    task: Task,
    ctx: TransferContext,
    head: ObjectHead,
    stream: Stream,
    headers: dict[str, str],
    progress: Progress,
) -> str:
    """Parts streamed at once within the budget; returns the new version id."""
    bucket = ctx.policy.target_bucket
    upload = await ctx.target.create_multipart(bucket, task.key, headers)
    etags: dict[int, str] = {}
    owed: dict[int, int] = {}  # budget bytes of parts not finished (a part never started too)

    async def part(number: int, start: int, length: int) -> None:
        async def send(body: AsyncIterator[bytes | memoryview]) -> str:
            return await ctx.target.upload_part(bucket, task.key, upload, number, body, "", length)

        try:
            if number == 1:  # the GET that brought the head starts at byte 0
                etags[number] = await _streamed(
                    task, ctx, _Pieces(ctx, stream, length, progress, exact=True), send
                )
                return
            async with _ranged(task, ctx, head, start, length) as body:
                etags[number] = await _streamed(
                    task, ctx, _Pieces(ctx, body, length, progress, exact=True), send
                )
        finally:
            ctx.part_budget.give(owed.pop(number))

    try:
        try:
            async with asyncio.TaskGroup() as group:
                for number, start in enumerate(range(0, head.size, ctx.part_size), 1):
                    length = min(ctx.part_size, head.size - start)
                    owed[number] = await _take(ctx, length, holding=bool(owed))
                    group.create_task(part(number, start, length))
        except BaseExceptionGroup as failed:
            # One error with its class, as from a single PUT: the dispatcher decides on it
            # by class, never on a group.
            raise first_error(failed) from None
        finally:
            # A part cancelled before it started never ran its `finally`: the budget is
            # engine-wide, bytes lost from it are lost for good.
            for number in list(owed):
                ctx.part_budget.give(owed.pop(number))
        parts = [etags[n] for n in range(1, len(etags) + 1)]
        version, _ = await ctx.target.complete_multipart(bucket, task.key, upload, parts)
    except BaseException:
        await shielded(_abort(ctx.target, bucket, task.key, upload))
        raise
    return version


@contextlib.asynccontextmanager
async def _ranged(
    task: Task, ctx: TransferContext, head: ObjectHead, start: int, length: int
) -> AsyncIterator[Stream]:
    """Bytes [start, start + length) of exactly the version the first GET returned."""
    policy = ctx.policy
    span = (start, start + length - 1)
    try:
        async with ctx.source.get(
            policy.source_bucket, task.key, head.version_id, span, head.etag
        ) as (_, body):
            yield body
    except MirrorlineError as exc:
        if exc.code == "PreconditionFailed":  # overwritten meanwhile (no versioning)
            raise NotFoundError(f"GET {task.key}: changed at the source", code=exc.code) from None
        raise


async def _take(ctx: TransferContext, length: int, holding: bool) -> int:
    """Budget bytes for one part. An upload holding none while it waits is counted as
    starved, which status shows as "multipart budget" (waiting on its own parts is pacing)."""
    starved = not holding and ctx.part_budget.free < min(length, ctx.part_budget.capacity)
    ctx.starved += starved
    try:
        return await ctx.part_budget.take(length)
    finally:
        ctx.starved -= starved


async def _abort(target: ObjectStore, bucket: str, key: str, upload: str) -> None:
    # Best effort: an upload left behind is invisible, and lifecycle rules reap it.
    with contextlib.suppress(Exception):
        await target.abort_multipart(bucket, key, upload)
