"""`replicate explain`: one object's whole story, from everything mirrorline keeps.

Both stores are listed for the key (they are the truth), then the queue says
what is queued or parked for it and the replica map what was copied where, and
the snapshot says whether each link is up and how fast each policy drains.
Each covering policy gets a verdict; the key's verdict is the worst of them
(VERDICTS order). Deciding is a plain function of what was gathered (`judge`),
so every verdict can be reasoned about without a store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from engine.aliases import AliasBook
from engine.checks.explanation import (
    FAILED,
    IN_SYNC,
    MISSING,
    NOT_COVERED,
    PENDING,
    SOURCE_LACKS,
    VERDICTS,
    WAITING,
    Coverage,
    Explanation,
    LinkRow,
    ReplicaRow,
    TargetSide,
    TaskRow,
    VersionRow,
    ago,
    clock,
)
from engine.errors import MirrorlineError, UserError
from engine.model import Task, TaskState
from engine.policy import Policy, format_tags, parse_path
from engine.s3 import ListedVersion, ObjectStore, listing
from engine.s3.client import S3Client
from engine.state.queue import TaskQueue
from engine.telemetry.snapshot import Snapshot


async def key_versions(store: ObjectStore, bucket: str, key: str) -> list[VersionRow]:
    """The key's versions and delete markers, newest first, as the story shows them."""
    return [_row(v) for v in await listing.key_versions(store, bucket, key)]


def _row(v: ListedVersion) -> VersionRow:
    return VersionRow(
        v.version_id, v.last_modified, v.size, v.etag, v.is_latest, v.is_delete_marker
    )


def coverage(policy: Policy, key: str, tags: dict[str, str] | None, newest: float) -> str:
    """'' if `policy` covers the key, else what keeps it out."""
    if not policy.enabled:
        return "the policy is disabled"
    if not policy.matches_key(key):
        return f"outside the policy's prefix {policy.prefix!r}"
    if policy.tags and tags is not None and not policy.matches_tags(tags):
        has = format_tags(tags) or "no tags"
        return f"the tag filter {format_tags(policy.tags)} does not match the object's {has}"
    if not policy.wants("existing-objects") and newest and newest < int(policy.created_at):
        return "written before the policy was added (existing-objects is off)"
    return ""


@dataclass(frozen=True)
class Evidence:
    """What one covering policy's verdict is decided from."""

    policy: Policy
    source: list[VersionRow]
    target: TargetSide
    replicas: dict[str, str | None]  # source version -> target version (None: nothing)
    tasks: list[TaskRow]
    links: list[LinkRow]
    hold: str
    last_scan_at: float | None
    next_scan_at: float | None
    running: bool
    now: float


def judge(e: Evidence) -> tuple[str, str]:
    """(verdict, reason) for one covering policy."""
    failed = [t for t in e.tasks if t.state == TaskState.FAILED.value]
    if failed:
        t = failed[-1]
        return FAILED, f"{t.op} {t.error_code or t.error_class}: {t.last_error}"
    down = [link for link in e.links if link.online is False]
    if down:
        link = down[0]
        since = f" for {ago(e.now - link.since)}" if link.since else ""
        queued = f", {len(e.tasks)} task(s) waiting" if e.tasks else ""
        error = f" ({link.last_error})" if link.last_error else ""
        return WAITING, f"{link.role} {link.alias} offline{since}{error}{queued}"
    if e.tasks:
        return PENDING, _pending(e.tasks[0], e.hold, e.now)
    return _settled(e)


def _pending(t: TaskRow, hold: str, now: float) -> str:
    if t.state == TaskState.RETRYING.value:
        return (
            f"retrying after {t.attempts} attempt(s), next try in {ago(t.next_at - now)}: "
            f"{t.error_code or t.error_class}: {t.last_error}"
        )
    if t.state == TaskState.IN_FLIGHT.value:
        return f"in flight (attempt {t.attempts})"
    text = f"pending for {ago(now - t.created_at)}"
    if t.ahead is not None:
        text += f", {t.ahead} ahead"
    eta = t.eta
    text += f", about {ago(eta)} to go" if eta is not None else ", not draining"
    return text + (f" ({hold})" if hold else "")


def _settled(e: Evidence) -> tuple[str, str]:
    """Nothing queued: does the target hold what it should, and if not, what will fix it."""
    wanted = [v for v in e.source if not v.delete_marker or e.policy.wants("delete-marker")]
    if not wanted:
        return IN_SYNC, "nothing of the key is to be replicated"
    newest = wanted[0]
    target = e.target.versions
    if e.target.error:
        return MISSING, f"cannot list the target: {e.target.error}"
    held = {v.version_id for v in target}
    resync = f"a resync is needed: mirrorline replicate resync start {e.policy.source} --id {e.policy.id}"
    if newest.version_id in e.replicas:
        replica = e.replicas[newest.version_id]
        if replica is None:
            if _same(newest, target):
                return IN_SYNC, f"the target's latest matches {newest.version_id}"
            return (
                MISSING,
                f"the replica map records nothing to copy for {newest.version_id}: {resync}",
            )
        if replica in held:
            return IN_SYNC, f"{newest.version_id} is replica {replica}"
        return MISSING, f"the target lost replica {replica}: the next scan queues it again" + _when(
            e
        )
    if _same(newest, target):
        return IN_SYNC, f"the target's latest matches {newest.version_id} (no replica recorded)"
    if not e.running:
        return MISSING, "no engine is running: the first scan of `mirrorline run` will queue it"
    if e.last_scan_at is None:
        return MISSING, "not scanned yet: the first scan will queue it"
    if newest.mtime + 1 > e.last_scan_at:
        return MISSING, (
            f"written after the last scan started ({clock(e.last_scan_at)}): "
            "the next scan will queue it" + _when(e)
        )
    return MISSING, f"the last scan ({clock(e.last_scan_at)}) did not queue it: {resync}"


def _same(version: VersionRow, target: Sequence[VersionRow]) -> bool:
    latest = next((v for v in target if v.latest), None)
    if latest is None:
        return version.delete_marker
    if version.delete_marker or latest.delete_marker:
        return version.delete_marker == latest.delete_marker
    plain = "-" not in version.etag and "-" not in latest.etag
    return version.size == latest.size and (not plain or version.etag == latest.etag)


def _when(e: Evidence) -> str:
    if e.next_scan_at is None:
        return ""
    return f" (due {clock(e.next_scan_at)}, in {ago(e.next_scan_at - e.now)})"


async def explain(
    source: str,
    key: str,
    policies: Sequence[Policy],
    book: AliasBook,
    queue: TaskQueue,
    snap: Snapshot,
    now: float,
) -> Explanation:
    if not key:
        raise UserError("name the key: ALIAS/BUCKET/KEY")
    alias, bucket = parse_path(source, "source")
    source = f"{alias}/{bucket}"
    mine = [p for p in policies if p.source == source]
    clients: dict[str, S3Client] = {}

    def client(name: str) -> ObjectStore:
        if name not in clients:
            clients[name] = S3Client.for_alias(book.get(name))
        return clients[name]

    try:
        return await _gather(source, key, mine, client, queue, snap, now)
    finally:
        for c in clients.values():
            await c.close()


async def _gather(
    source: str,
    key: str,
    mine: list[Policy],
    client: Callable[[str], ObjectStore],
    queue: TaskQueue,
    snap: Snapshot,
    now: float,
) -> Explanation:
    alias, bucket = source.split("/", 1)
    links = {link.alias: link for link in snap.links}

    def link_row(name: str, role: str) -> LinkRow:
        found = links.get(name)
        if found is None:
            return LinkRow(name, role, None, None)
        return LinkRow(name, role, found.online, found.since, found.last_error)

    source_link = link_row(alias, "source")
    store = client(alias)  # an unknown alias is the operator's mistake, said as it is
    try:
        versions = await key_versions(store, bucket, key)
    except MirrorlineError as exc:
        if source_link.online is False or exc.link_down:
            return Explanation(
                source,
                key,
                now,
                WAITING,
                f"the source is offline: {exc.reason}",
                source_error=exc.reason,
                links=[source_link],
            )
        raise exc.within(f"list {source}/{key}") from None
    newest_live = next((v for v in versions if not v.delete_marker), None)
    tags: dict[str, str] | None = None
    if newest_live is not None and any(p.tags for p in mine):
        tags = await store.get_tags(bucket, key, newest_live.version_id)
    newest = versions[0].mtime if versions else 0.0
    tasks = await _task_rows(await queue.tasks_of_key([p.id for p in mine], key), queue, snap)
    covers: list[Coverage] = []
    sides: list[TargetSide] = []
    replicas: list[ReplicaRow] = []
    link_rows = [source_link]
    for p in mine:
        why = coverage(p, key, tags, newest)
        if why:
            covers.append(Coverage(p.id, p.target, False, why))
            continue
        side = TargetSide(p.id, p.target)
        try:
            side = replace(
                side, versions=await key_versions(client(p.target_alias), p.target_bucket, key)
            )
        except MirrorlineError as exc:
            side = replace(side, error=exc.reason)
        sides.append(side)
        mapped = {
            r.source_version: r.target_version for r in await queue.replicas_of_key(p.id, key)
        }
        replicas += [ReplicaRow(p.id, s, t) for s, t in mapped.items()]
        target_link = link_row(p.target_alias, "target")
        if target_link not in link_rows:
            link_rows.append(target_link)
        stats = snap.policy(p.id)
        evidence = Evidence(
            p,
            versions,
            side,
            mapped,
            [t for t in tasks if t.policy == p.id],
            [source_link, target_link],
            stats.hold if stats else "",
            stats.last_scan_at if stats else None,
            stats.next_scan_at if stats else None,
            snap.engine.running,
            now,
        )
        verdict, reason = judge(evidence)
        covers.append(Coverage(p.id, p.target, True, "", verdict, reason, evidence.hold))
    verdict, reason = _overall(source, versions, tasks, covers)
    return Explanation(
        source, key, now, verdict, reason, covers, versions, "", sides, replicas, tasks, link_rows
    )


async def _task_rows(found: list[Task], queue: TaskQueue, snap: Snapshot) -> list[TaskRow]:
    """Each task with where it stands: pending ones with their place in line (`ahead`)
    and their policy's drain rate now, parked ones with their failed attempts."""
    rows = []
    for t in found:
        stats = snap.policy(t.policy)
        rate = stats.rate.current_objects if stats and snap.engine.running else 0.0
        ahead = await queue.ahead(t) if t.state is TaskState.PENDING else None
        history = await queue.attempts(t.id) if t.error_class else []
        rows.append(TaskRow.of(t, ahead, rate, history))
    return rows


def _overall(
    source: str, versions: list[VersionRow], tasks: list[TaskRow], covers: list[Coverage]
) -> tuple[str, str]:
    if not versions and not tasks:
        return SOURCE_LACKS, f"{source} has no version or delete marker of the key"
    covering = [c for c in covers if c.covers]
    if not covering:
        why = "; ".join(f"{c.policy}: {c.why}" for c in covers)
        return NOT_COVERED, why or f"no policy replicates {source}"
    worst = min(covering, key=lambda c: VERDICTS.index(c.verdict))
    prefix = f"{worst.policy}: " if len(covering) > 1 else ""
    return worst.verdict, prefix + worst.reason
