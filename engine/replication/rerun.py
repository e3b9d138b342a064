"""Before a task copies: does the target already hold its version, or may it still land?

A copy repeated is a no-op: every replica names its origin version (engine/s3/origin.py),
so a task looks for one before it copies. A task claimed before (`attempts` > 1) looks
harder, because its earlier attempt may have written without the completion being recorded:

- under newer versions of the key (several versions of one claim landed before the engine
  died): the key's newest versions are asked too, not only the latest;
- *after* the look. A SIGKILL does not stop what the dead process already sent: a PUT or
  a CompleteMultipartUpload the server has received lands after the client is gone. On
  SeaweedFS a PUT into a fresh bucket lands 0.2 s after the client's reset on an idle
  machine (its first write grows the bucket's volumes), seconds on a loaded one; a re-run
  that looked before then copied the version a second time (the crash test, once in CI).
  So a re-run of a multipart-sized task first settles the key's open uploads: one with
  every byte uploaded may have its completion in flight, and is waited for until the
  server lists it no more, as long as the settling window below lasts; one with bytes
  missing can never complete (a completion is sent only after every part) and is
  aborted, so a dead run leaves no partial upload behind to be billed. A single PUT
  leaves no trace until it lands: a re-run in the settling window after a restart that
  found a dead run's leases (`TransferContext.settle_until`) that finds no replica waits
  for the window to pass and looks once more.

A first attempt pays one HEAD, as before: everything else is behind `attempts` > 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from engine.errors import NotFoundError, PermanentError
from engine.model import Task
from engine.replication.context import TransferContext
from engine.s3.origin import replica_of

log = logging.getLogger("mirrorline.rerun")

SETTLE = 3.0  # seconds after a restart that found a dead run's leases (CI: the look came ~1 s in)
UPLOAD_POLL = 0.2
OLDER = 32  # older versions a re-run asks for its replica


async def held(task: Task, ctx: TransferContext) -> str:
    """Version id of a target replica of exactly this source version, or ''."""
    if task.attempts <= 1:
        return await target_holds(task, ctx)
    if task.size > ctx.multipart_from:  # its writes show as open uploads until they land
        try:
            await settle_uploads(task, ctx)
        except PermanentError as exc:  # not allowed to list uploads: the window must do
            log.warning("cannot list the uploads of %r: %s", task.key, exc.reason)
        else:
            return await target_holds(task, ctx)
    found = await target_holds(task, ctx)
    wait = ctx.settle_until - time.monotonic()
    if found or wait <= 0:
        return found
    await asyncio.sleep(wait)  # what the dead run sent lands in this window, or never
    return await target_holds(task, ctx)


async def settle_uploads(task: Task, ctx: TransferContext) -> None:
    """Let the key's open uploads end: wait for those holding every byte (their completion
    may be in flight) while the settling window lasts, abort the rest, and those still open
    when it ends (their engine died between its last part and the completion).

    Only a re-run comes here, and the queue runs one task of a key at a time, so an open
    upload of the key is a dead attempt's (of this version or of another of the key)."""
    bucket = ctx.policy.target_bucket
    while True:
        open_uploads = await ctx.target.pending_uploads(bucket, task.key)
        late = time.monotonic() >= ctx.settle_until
        whole = set() if late else {u for u, n in open_uploads.items() if n >= task.size}
        for upload in open_uploads.keys() - whole:
            log.info("aborting upload %s of %r left by an earlier attempt", upload, task.key)
            with contextlib.suppress(NotFoundError):  # it completed or ended meanwhile
                await ctx.target.abort_multipart(bucket, task.key, upload)
        if not whole:
            return
        await asyncio.sleep(UPLOAD_POLL)  # a completion in flight on the server


async def target_holds(task: Task, ctx: TransferContext, most: int = OLDER) -> str:
    """The replica among the latest version and, for a re-run, the `most` newest others.

    The latest version answers in one HEAD. A task claimed before may have landed under
    newer versions of its key (the engine died after several versions, or a marker, of one
    claim were written and before their completions were recorded): asking the others too
    finds its replica instead of writing a second copy on top."""
    bucket = ctx.policy.target_bucket
    latest = ""
    try:
        head = await ctx.target.head(bucket, task.key)
        if await replica_of(head, ctx.source_origin) == task.version_id:
            return head.version_id
        latest = head.version_id
    except NotFoundError:
        pass  # no object, or a delete marker on top
    if task.attempts <= 1:
        return ""
    asked = 0
    async with contextlib.aclosing(ctx.target.list_versions(bucket, task.key)) as pages:
        async for page in pages:
            for v in page:
                if v.key > task.key or asked >= most:
                    return ""
                if v.key != task.key or v.is_delete_marker or v.version_id == latest:
                    continue
                asked += 1
                try:
                    older = await ctx.target.head(bucket, task.key, v.version_id)
                except NotFoundError:
                    continue  # removed meanwhile
                if await replica_of(older, ctx.source_origin) == task.version_id:
                    return older.version_id
    return ""
