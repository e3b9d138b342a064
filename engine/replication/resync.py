"""Resync: walk a policy's whole source bucket and re-queue what the target lacks.

For a target wiped, replaced or changed out of band, a replica map that cannot be
trusted, or a policy added without existing-objects that now needs the old objects
(`mc replicate resync` is the model). So a resync trusts neither the map nor the
cutoff: per key it reads the target's versions and their origin metadata (every
replica names its source version; listing ETags prove nothing for multipart
objects) and queues what the target's current state lacks (`_plan`).

A page of keys is listed, compared and queued, and the cursor (the last key handled)
and counters move in the same transaction as its tasks: after a SIGKILL a restart
resumes after the cursor. Tasks carry the resync id, so the queue's `complete` counts
them; failed is counted live (a `replicate retry` shows). The walk stays two pages of
copies ahead of the dispatcher, so a huge bucket never floods the queue and progress
means copies; it yields to nothing else (its tasks are claimed like any others). On a
paused policy it queues its two pages, then waits for `resume`. The ETA is honest or
absent: a count of the source's versions runs beside the walk, no ETA before it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import replace

from engine.errors import MirrorlineError, NotFoundError
from engine.model import NewTask, Op
from engine.policy import Policy
from engine.replication.dispatcher import Dispatcher
from engine.replication.transfer import TransferContext
from engine.s3 import ListedVersion
from engine.s3.listing import between, grouped
from engine.s3.origin import replica_of
from engine.state.queue import TaskQueue
from engine.state.stores import (
    DONE,
    FAILED,
    RUNNING,
    LeaseStore,
    Resync,
    ResyncStopped,
    ResyncStore,
    SoloLeases,
)

log = logging.getLogger("mirrorline.resync")


class ResyncRunner:
    """Runs every running resync of the engine's policies; picks up starts and cancels."""

    def __init__(
        self,
        store: ResyncStore,
        queue: TaskQueue,
        policies: Mapping[str, Policy],
        dispatchers: Mapping[str, Dispatcher],
        poll: float = 1.0,
        leases: LeaseStore | None = None,
    ) -> None:
        self.store = store
        self._leases = leases or SoloLeases()  # shared state: one node walks a resync
        self._queue = queue
        self._policies = policies  # the engine's live dicts: read, never written
        self._dispatchers = dispatchers
        self._poll = poll
        self._heads = asyncio.Semaphore(16)  # target HEADs at once, across walks

    async def run(self) -> None:
        walks: dict[int, asyncio.Task[None]] = {}
        try:
            while True:
                await asyncio.sleep(self._poll)
                try:
                    running = {r.id: r for r in await self.store.running()}
                except Exception:  # a database hiccup must not end resyncs for this run
                    log.exception("resync runner: reading resyncs failed")
                    continue
                for rid in set(walks) - set(running):
                    walks.pop(rid).cancel()  # cancelled (or finished) meanwhile
                for rid, r in running.items():
                    if not await self._held(rid, rid in walks):
                        if rid in walks:  # another node took it over: it resumes at the cursor
                            walks.pop(rid).cancel()
                        continue
                    if rid not in walks or walks[rid].done():
                        walks[rid] = asyncio.create_task(self._walk(r), name=f"resync-{rid}")
        finally:
            for walk in walks.values():
                walk.cancel()
            await asyncio.gather(*walks.values(), return_exceptions=True)

    async def _held(self, rid: int, walking: bool) -> bool:
        """Whether this node walks resync `rid` (a database hiccup changes nothing)."""
        try:
            return await self._leases.hold(f"resync:{rid}")
        except Exception:
            log.exception("resync runner: renewing the lease of resync %d failed", rid)
            return walking

    def _context(self, pid: str) -> TransferContext | None:
        """The policy's transfer context while the engine runs it and both links are up."""
        policy = self._policies.get(pid)
        dispatcher = self._dispatchers.get(policy.target_alias) if policy else None
        route = dispatcher.routes.get(pid) if dispatcher else None
        if route is None or not (route.source_link.online and route.target_link.online):
            return None
        return route.context

    async def _walk(self, r: Resync) -> None:
        since = (time.monotonic(), r.scanned)  # for the rate
        counter: asyncio.Task[None] | None = None
        try:
            while True:
                ctx = self._context(r.policy)
                if ctx is None:
                    await asyncio.sleep(self._poll)
                    continue
                if r.walked_at is None:
                    if r.total is None and counter is None:
                        counter = asyncio.create_task(self._count(r, ctx))
                    try:
                        r = await self._pages(r, ctx, since)
                    except MirrorlineError as exc:
                        log.warning("resync %d of %s: %s", r.id, r.policy, exc)
                        await self.store.note(r.id, last_error=exc.reason)
                        await asyncio.sleep(self._poll * 3)
                        r = await self.store.get(r.id)
                        continue
                    if counter is not None:
                        counter.cancel()  # the walk's own count is exact now
                if not (await self.store.get(r.id)).pending:
                    await self.store.note(r.id, state=DONE, finished_at=time.time())
                    log.info("resync %d of %s done: %d scanned", r.id, r.policy, r.scanned)
                    return
                await asyncio.sleep(self._poll)
        except ResyncStopped:
            log.info("resync %d of %s cancelled", r.id, r.policy)
        except Exception as exc:
            log.exception("resync %d of %s crashed", r.id, r.policy)
            await self.store.note(r.id, state=FAILED, last_error=f"internal error: {exc}")
        finally:
            if counter is not None:
                counter.cancel()

    async def _count(self, r: Resync, ctx: TransferContext) -> None:
        """The source's versions, for an honest ETA (a listing only: no HEADs, no compare)."""
        total = 0
        try:
            async for page in ctx.source.list_versions(ctx.policy.source_bucket, ctx.policy.prefix):
                total += len(page)
        except MirrorlineError as exc:
            log.info("resync %d: counting failed, no ETA: %s", r.id, exc)
            return
        await self.store.note(r.id, only_if_walking=True, total=total)

    async def _pages(self, r: Resync, ctx: TransferContext, since: tuple[float, int]) -> Resync:
        """Walk from the cursor to the end, a checkpointed page at a time."""
        if r.cursor:
            log.info("resync %d: resuming after %r (%d scanned)", r.id, r.cursor, r.scanned)
        policy = ctx.policy
        listing = ctx.source.list_versions(
            policy.source_bucket, policy.prefix, key_marker=r.cursor, page_size=r.page_size
        )
        groups = grouped(listing)
        chunk: list[list[ListedVersion]] = []
        versions = 0
        async with contextlib.aclosing(listing), contextlib.aclosing(groups):
            async for group in groups:
                chunk.append(group)
                versions += len(group)
                if versions >= r.page_size:
                    r, chunk, versions = await self._page(r, ctx, chunk, since), [], 0
        if chunk:
            r = await self._page(r, ctx, chunk, since)
        now = time.time()
        await self.store.note(r.id, walked_at=now, total=r.scanned, current_key="")
        return replace(r, walked_at=now, total=r.scanned)

    async def _page(
        self,
        r: Resync,
        ctx: TransferContext,
        chunk: list[list[ListedVersion]],
        since: tuple[float, int],
    ) -> Resync:
        def rate(scanned: int) -> float:
            return (scanned - since[1]) / max(time.monotonic() - since[0], 1e-3)

        while True:  # two pages of copies ahead of the dispatcher are enough
            now = await self.store.get(r.id)
            if now.state != RUNNING:
                raise ResyncStopped
            if now.pending < 2 * r.page_size:
                break
            await self.store.note(r.id, rate=rate(r.scanned))  # waiting lowers the rate
            await asyncio.sleep(0.5)
        policy, high = ctx.policy, chunk[-1][0].key
        await self.store.note(r.id, current_key=chunk[0][0].key)
        # The map is read before the target is listed: a copy completing after this
        # read changes the map, and enqueue_resync then refuses to queue it again.
        seen = {
            (m.key, m.source_version): m.target_version or ""
            for m in await self._queue.replicas([policy.id], r.cursor, high)
        }
        held = await between(ctx.target, policy.target_bucket, policy.prefix, r.cursor, high)
        plans = await asyncio.gather(
            *(self._plan(ctx, group, held.get(group[0].key, [])) for group in chunk)
        )
        tasks = [
            replace(t, target_version=seen.get((t.key, t.version_id), ""))
            for plan in plans
            for t in plan
        ]
        versions = sum(map(len, chunk))
        r = await self.store.checkpoint(r, tasks, high, versions, rate(r.scanned + versions))
        if tasks:
            self._dispatchers[policy.target_alias].wake()
        return r

    async def _plan(
        self, ctx: TransferContext, source: list[ListedVersion], target: list[ListedVersion]
    ) -> list[NewTask]:
        """Source versions (oldest first) the target needs so its current state is the source's.

        The target is "at" source version i when its latest version is a replica of
        it (or both latest versions are delete markers): versions newer than i are
        copied. When its latest is nothing of ours (changed or deleted out of band),
        the versions newer than the newest replica it still holds are copied, and at
        least the source's latest. Older gaps are left: filling them would put an old
        version on top of a newer one.
        """
        index = {v.version_id: i for i, v in enumerate(source)}
        end = len(source)
        for n, version in enumerate(target):
            if version.is_delete_marker:
                if n == 0 and source[0].is_delete_marker:
                    end = 0
                    break
                continue
            origin = await self._origin(ctx, version)
            if origin in index:
                end = index[origin] if n == 0 else max(index[origin], 1)
                break
        if not target and all(v.is_delete_marker for v in source[:end]):
            return []  # deleted at the source, absent on the target: nothing to show
        wanted = [
            NewTask(
                policy=ctx.policy.id,
                key=v.key,
                version_id=v.version_id,
                op=Op.DELETE_MARKER if v.is_delete_marker else Op.PUT,
                size=v.size,
                etag=v.etag,
                src_mtime=v.last_modified,
                seq=len(source) - 1 - i,
                target_has_key=bool(target),
            )
            for i, v in reversed(list(enumerate(source[:end])))
            if not v.is_delete_marker or ctx.policy.wants("delete-marker")
        ]
        if not ctx.policy.tags:
            return wanted
        keep = await asyncio.gather(*(self._tagged(ctx, t) for t in wanted))
        return [t for t, ok in zip(wanted, keep, strict=True) if ok]

    async def _tagged(self, ctx: TransferContext, task: NewTask) -> bool:
        """A version a tag-filtered policy copies: the others are not work to queue or count
        (the transfer would skip each one, and the resync report them as queued)."""
        if task.op is not Op.PUT:
            return True
        async with self._heads:
            try:
                tags = await ctx.source.get_tags(
                    ctx.policy.source_bucket, task.key, task.version_id
                )
            except NotFoundError:
                return False  # gone since the listing: nothing to copy
        return ctx.policy.matches_tags(tags)

    async def _origin(self, ctx: TransferContext, version: ListedVersion) -> str:
        """The source version id a target version replicates ('' if none of ours)."""
        async with self._heads:
            try:
                head = await ctx.target.head(
                    ctx.policy.target_bucket, version.key, version.version_id
                )
            except NotFoundError:
                return ""
        return await replica_of(head, ctx.source_origin)
