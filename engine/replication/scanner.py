"""Change detection: what does the source hold that the target does not?

A scan walks three sorted streams in step, a page of keys at a time: the
source's versions, the target's versions, and the replica map (which source
version became which target version). `plan_key` decides per key, with no I/O;
memory stays bounded by one page however large the bucket. A plan that says a
version the map names is missing (gone at the source, lost on the target) is
checked against a second listing taken after the map was read (`_confirmed`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from engine.errors import MirrorlineError, NotFoundError
from engine.model import NewTask, Op
from engine.policy import Policy
from engine.s3 import ListedVersion, ObjectStore
from engine.s3.listing import grouped
from engine.state.queue import Replica, TaskQueue


@dataclass
class ScanResult:
    """What a scan found; for a detector's step, also whether it was full and why it failed."""

    keys: int = 0
    versions: int = 0
    enqueued: int = 0
    full: bool = False
    error: MirrorlineError | None = None

    def add(self, other: ScanResult) -> None:
        self.keys += other.keys
        self.versions += other.versions
        self.enqueued += other.enqueued


def plan_key(
    policy: Policy,
    key: str,
    source: Sequence[ListedVersion],
    target_ids: set[str],
    replicas: dict[str, Replica],
    echoes: set[str],
) -> list[NewTask]:
    """Tasks that bring one key's target in line with its source.

    source: the key's source versions, newest first (S3 listing order).
    target_ids: version ids the target holds for the key.
    replicas: source version id -> replica record, for this policy.
    echoes: source version ids that are themselves replicas written by a policy
        running the other way (target -> source): never sent back.
    """
    tasks: list[NewTask] = []
    if not policy.matches_key(key):
        return tasks
    for seq, version in enumerate(reversed(source)):
        if version.version_id in echoes:
            continue
        if version.is_delete_marker and not policy.wants("delete-marker"):
            continue
        if not policy.wants("existing-objects") and version.last_modified < int(policy.created_at):
            continue
        seen = replicas.get(version.version_id)
        if seen is not None and (seen.target_version is None or seen.target_version in target_ids):
            continue
        tasks.append(
            NewTask(
                policy=policy.id,
                key=key,
                version_id=version.version_id,
                op=Op.DELETE_MARKER if version.is_delete_marker else Op.PUT,
                size=version.size,
                etag=version.etag,
                src_mtime=version.last_modified,
                seq=seq,
                # The replica we expected and did not find: the queue re-copies only
                # while the map still says exactly this (see TaskQueue.enqueue).
                target_version=(seen.target_version or "") if seen else "",
                # A mapped replica missing from the listing may be newer than the listing
                # (the target page was read before that copy landed): look before copying.
                target_has_key=bool(target_ids) or seen is not None,
            )
        )
    if policy.wants("delete"):
        live = {v.version_id for v in source}
        for replica in replicas.values():
            if replica.source_version not in live and replica.target_version:
                tasks.append(
                    NewTask(
                        policy=policy.id,
                        key=key,
                        version_id=replica.source_version,
                        op=Op.DELETE_VERSION,
                        src_mtime=replica.src_mtime,
                        seq=replica.seq,
                        target_version=replica.target_version,
                    )
                )
    return tasks


class _Cursor:
    """Reads a grouped stream up to a given key (the target side of the merge)."""

    def __init__(self, groups: AsyncIterator[list[ListedVersion]]) -> None:
        self._groups = groups
        self._head: list[ListedVersion] | None = None
        self._done = False

    async def upto(self, high: str | None) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        while not self._done:
            if self._head is None:
                try:
                    self._head = await anext(self._groups)
                except StopAsyncIteration:
                    self._done = True
                    break
            if high is not None and self._head[0].key > high:
                break
            out[self._head[0].key] = {v.version_id for v in self._head}
            self._head = None
        return out


async def _listed(
    store: ObjectStore, bucket: str, prefix: str, low: str, high: str | None
) -> set[tuple[str, str]]:
    """(key, version id) of every version `store` lists now with low < key <= high."""
    listed: set[tuple[str, str]] = set()
    pages = store.list_versions(bucket, prefix, key_marker=low)
    async with contextlib.aclosing(pages):
        async for page in pages:
            listed.update((v.key, v.version_id) for v in page if high is None or v.key <= high)
            if high is not None and page[-1].key > high:
                break
    return listed


async def _confirmed(
    tasks: list[NewTask],
    policy: Policy,
    source: ObjectStore,
    target: ObjectStore,
    prefix: str,
    low: str,
    high: str | None,
) -> list[NewTask]:
    """`tasks` less the plans that a listing taken after the replica map was read refutes.

    The source page was listed before the map was read, and often the target page
    too (the cursor reads one group ahead, into the next page). A copy recorded in
    between is in the map but missing from a page, and two plans say "missing":
    its source version is gone (a version delete: the fresh replica would be
    deleted) or its replica is lost (a re-copy: made harmless by the target check,
    but a HEAD and a second count). A listing of the range taken now shows every
    version the map can name unless it really is gone, as version ids are never
    reused. One listing per side, only when a plan needs it: a HEAD per version
    would cost more, and S3 refuses a HEAD of a delete marker's version.
    """
    gone = any(t.op is Op.DELETE_VERSION for t in tasks)
    lost = any(t.op is not Op.DELETE_VERSION and t.target_version for t in tasks)
    at_source = await _listed(source, policy.source_bucket, prefix, low, high) if gone else set()
    on_target = await _listed(target, policy.target_bucket, prefix, low, high) if lost else set()

    def refuted(t: NewTask) -> bool:
        if t.op is Op.DELETE_VERSION:
            return (t.key, t.version_id) in at_source
        return bool(t.target_version) and (t.key, t.target_version) in on_target

    return [t for t in tasks if not refuted(t)]


async def scan(
    policy: Policy,
    source: ObjectStore,
    target: ObjectStore,
    queue: TaskQueue,
    reverse_policies: Sequence[str] = (),
    prefix: str | None = None,
    chunk_keys: int = 1000,
    on_enqueued: Callable[[], None] = lambda: None,
) -> ScanResult:
    """Compare source and target under `prefix` (default: the policy's) and enqueue the difference.

    `on_enqueued` hears of each page that queued something as soon as it is queued,
    so copying can start while a long scan is still listing.
    """
    prefix = policy.prefix if prefix is None else prefix
    result = ScanResult()
    source_groups = grouped(source.list_versions(policy.source_bucket, prefix))
    target_cursor = _Cursor(grouped(target.list_versions(policy.target_bucket, prefix)))
    low = ""
    chunk: list[list[ListedVersion]] = []

    async def flush(high: str | None) -> None:
        nonlocal low
        mapped: dict[str, dict[str, Replica]] = defaultdict(dict)
        for r in await queue.replicas([policy.id], low, high):
            if r.key.startswith(prefix):
                mapped[r.key][r.source_version] = r
        echoes = {
            r.target_version
            for r in await queue.replicas(reverse_policies, low, high)
            if r.target_version
        }
        on_target = await target_cursor.upto(high)
        by_key = {group[0].key: group for group in chunk}
        tasks: list[NewTask] = []
        for key in sorted(by_key.keys() | mapped.keys()):
            tasks += plan_key(
                policy, key, by_key.get(key, []), on_target.get(key, set()), mapped[key], echoes
            )
        tasks = await _confirmed(tasks, policy, source, target, prefix, low, high)
        added = await queue.enqueue(tasks)
        if added:
            result.enqueued += added
            on_enqueued()
        if high is not None:
            low = high
        chunk.clear()

    async for group in source_groups:
        result.keys += 1
        result.versions += len(group)
        chunk.append(group)
        if len(chunk) >= chunk_keys:
            await flush(chunk[-1][0].key)
    if chunk:
        await flush(chunk[-1][0].key)
    await flush(None)  # replicas past the last source key: sources deleted for good
    return result


async def sweep_tags(
    policy: Policy,
    source: ObjectStore,
    target: ObjectStore,
    queue: TaskQueue,
    after: str,
    batch: int = 100,
) -> tuple[str, int]:
    """Compare tags of up to `batch` replicated versions after key `after`.

    Tag changes leave no trace in a listing, so this walks the replica map a
    slice at a time (the caller paces it) and queues a metadata task for each
    version whose tags differ. Returns (where to resume, '' to start over; tasks).
    """
    page = await queue.replicas([policy.id], after, None, limit=batch)
    if not page:
        return "", 0
    rows = [r for r in page if r.target_version and policy.matches_key(r.key)]

    async def differs(replica: Replica) -> bool:
        try:
            wanted = await source.get_tags(
                policy.source_bucket, replica.key, replica.source_version
            )
            held = await target.get_tags(
                policy.target_bucket, replica.key, replica.target_version or ""
            )
        except NotFoundError:
            return False  # deleted meanwhile: the scanner handles that
        return wanted != held

    changed = await asyncio.gather(*(differs(r) for r in rows))
    tasks = [
        NewTask(
            policy=policy.id,
            key=r.key,
            version_id=r.source_version,
            op=Op.METADATA,
            src_mtime=r.src_mtime,
            seq=r.seq,
            target_version=r.target_version or "",
        )
        for r, diff in zip(rows, changed, strict=True)
        if diff
    ]
    return page[-1].key, await queue.enqueue(tasks)
