"""The service on a state dir, and on the engine in this process when there is one.

The checks that reach the stores (explain, diff, verify, endpoint probes) bring
aiohttp and the minio SDK with them: each is imported in the method that uses
it, so a read-only command (`status`, `backlog`, `ls`) starts without them."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.aliases import Alias, AliasBook
from engine.checks.report import Difference, PolicyReport
from engine.config import DEFAULT_RESYNC_PAGE, check_dir, state_address
from engine.errors import UserError
from engine.model import Attempt, Cause, Counts, FailureGroup, TaskState
from engine.policy import (
    OPERATIONS,
    Policy,
    new_id,
    parse_bandwidth,
    parse_id,
    parse_path,
    parse_prefix,
    parse_priority,
    parse_replicate,
    parse_tags,
)
from engine.service import (
    MAX_PAGE,
    AliasWriter,
    AuditEntry,
    Explanation,
    PolicySpec,
    Service,
    TaskPage,
    bounds,
)
from engine.state import State, TaskQueue, open_state
from engine.state.stores import PolicyStore
from engine.telemetry.compose import FRESH, cluster_of, compose, hold, state_of, targets
from engine.telemetry.snapshot import HistoryPoint, Snapshot, Transfer
from engine.telemetry.stats import Telemetry, history, with_backlog

if TYPE_CHECKING:  # the engine's own process hands it in; a read-only command never loads it
    from engine.engine import Engine

MAX_CONCURRENCY = 256  # keys a verify compares at once
MAX_RESYNC_PAGE = 1000


@dataclass
class LocalService(Service, AliasWriter):
    """The state dir's database, and the engine in this process when there is one.

    Aliases are read from their file on each use (`book.fresh()`): the CLI may
    set one while an engine and its API run, and a write from a stale copy
    would drop it."""

    state: State
    book: AliasBook
    actor: str = "cli"
    engine: Engine | None = None
    owns_state: bool = False  # opened by `open`: closed with the service
    store: PolicyStore = field(init=False)
    queue: TaskQueue = field(init=False)

    def __post_init__(self) -> None:
        self.store = self.state.policies
        self.queue = self.state.queue

    @classmethod
    async def open(
        cls, state_dir: Path, actor: str = "cli", queue: str | None = None
    ) -> LocalService:
        book = AliasBook(check_dir(state_dir) / "aliases.json")  # fails before the db opens
        state = await open_state(state_address(state_dir, queue))
        return cls(state, book, actor, owns_state=True)

    async def close(self) -> None:
        if self.owns_state:
            await self.state.close()

    async def status(self) -> Snapshot:
        if self.engine is not None and self.engine.snapshot is not None:
            return self.engine.snapshot
        return await stored_snapshot(self.state)

    async def policies(self) -> list[Policy]:
        return await self.store.all()

    async def policy(self, policy_id: str) -> Policy:
        return await self.store.get(policy_id)

    async def tasks(
        self,
        states: Sequence[TaskState] = (),
        policy: str | None = None,
        limit: int = 100,
        after: int = 0,
        query: str = "",
        descending: bool = False,
        cause: Cause | None = None,
    ) -> TaskPage:
        if isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE:
            raise UserError(f"limit must be between 1 and {MAX_PAGE}")
        bounds.cursor(after)
        bounds.query(query)
        if policy:
            await self.store.get(policy)
        found = await self.queue.tasks(policy, states, limit + 1, after, query, descending, cause)
        more = len(found) > limit
        found = found[:limit]
        return TaskPage(found, found[-1].id if more else None)

    async def failure_groups(self, policy: str | None = None) -> list[FailureGroup]:
        if policy:
            await self.store.get(policy)
        return await self.queue.failure_groups(policy)

    async def explain(self, source: str, key: str) -> Explanation:
        from engine.checks.explain import explain

        snap = await self.status()
        policies = await self.store.all()
        return await explain(
            source, key, policies, self.book.fresh(), self.queue, snap, time.time()
        )

    async def attempts(self, task_id: int) -> list[Attempt]:
        return await self.queue.attempts(bounds.task_ids([task_id])[0])

    async def transfers(self) -> list[Transfer]:
        return (await self.status()).transfers

    async def history(self, since: float, policy: str | None = None) -> list[HistoryPoint]:
        return await history(self.state.telemetry, bounds.since(since), policy)

    async def set_paused(self, paused: bool, policy: str | None = None) -> None:
        await self.store.set_paused(paused, policy)
        await self._audit(
            "pause" if paused else "resume", f"policy {policy}" if policy else "engine"
        )
        await self._applied()

    async def retry(self, ids: Sequence[int] = (), policy: str | None = None) -> int:
        bounds.task_ids(ids)
        if policy:
            await self.store.get(policy)
        if ids:
            missing = sorted(set(ids) - await self.queue.parked(ids, policy))
            if missing:
                listed = ", ".join(map(str, missing[:10]))
                raise UserError(f"no failed or retrying task with id {listed}")
        count = await self.queue.requeue(policy, ids)
        what = f"{count} task(s)" + (f" of policy {policy}" if policy else "")
        await self._audit("retry", what + (f": ids {', '.join(map(str, ids[:20]))}" if ids else ""))
        await self._applied()
        return count

    async def _parse(self, spec: PolicySpec, policy_id: str, priority: int | None) -> Policy:
        """The same rules for add and edit, from every front end."""
        source_alias, source_bucket = parse_path(spec.source, "source")
        target_alias, target_bucket = parse_path(spec.target, "target")
        return Policy(
            id=policy_id,
            priority=parse_priority(priority)
            if priority is not None
            else await self.store.next_priority(),
            source_alias=source_alias,
            source_bucket=source_bucket,
            target_alias=target_alias,
            target_bucket=target_bucket,
            prefix=parse_prefix(spec.prefix),
            tags=parse_tags(spec.tags),
            replicate=parse_replicate(spec.replicate)
            if spec.replicate is not None
            else frozenset(OPERATIONS),
            bandwidth=parse_bandwidth(spec.bandwidth) if spec.bandwidth else 0,
            enabled=spec.enabled is not False,
        )

    async def add_policy(self, spec: PolicySpec) -> Policy:
        if spec.id is not None:
            if not spec.id.strip():
                raise UserError("the policy id must not be empty")
            parse_id(spec.id)
        from engine.checks.endpoints import check_policy

        policy = await self._parse(spec, spec.id or new_id(), spec.priority)
        await self.store.check_new(policy)
        await check_policy(policy, self.book.fresh())
        policy = await self.store.add(policy)
        await self._audit("add-policy", f"{policy.id}: {policy.source} -> {policy.target}")
        await self._applied()
        return policy

    async def update_policy(self, policy_id: str, spec: PolicySpec) -> Policy:
        old = await self.store.get(policy_id)
        priority = old.priority if spec.priority is None else spec.priority
        new = await self._parse(spec, policy_id, priority)
        enabled = old.enabled if spec.enabled is None else spec.enabled
        new = replace(new, paused=old.paused, created_at=old.created_at, enabled=enabled)
        if (new.source, new.target) != (old.source, old.target):
            from engine.checks.endpoints import check_policy

            await check_policy(new, self.book.fresh())
        policy = await self.store.update(new)
        if replace(old, enabled=policy.enabled) == policy != old:  # `--state` alone
            await self._audit("enable" if policy.enabled else "disable", f"policy {policy.id}")
        else:
            await self._audit("edit-policy", f"{policy.id}: {policy.source} -> {policy.target}")
        await self._applied()
        return policy

    async def set_enabled(self, policy_id: str, enabled: bool) -> None:
        old = await self.store.get(policy_id)
        await self.store.update(replace(old, enabled=enabled))
        await self._audit("enable" if enabled else "disable", f"policy {policy_id}")
        await self._applied()

    async def remove_policy(self, policy_id: str) -> None:
        await self.store.remove(policy_id)
        await self.queue.drop_policy(policy_id)
        await self._audit("remove-policy", policy_id)
        await self._applied()

    async def start_resync(
        self, *policy_ids: str, page_size: int | None = None
    ) -> list[dict[str, Any]]:
        page = DEFAULT_RESYNC_PAGE if page_size is None else page_size
        if not 1 <= page <= MAX_RESYNC_PAGE:
            raise UserError(f"the page size must be between 1 and {MAX_RESYNC_PAGE}")
        await self._known(policy_ids)
        started = await self.state.resyncs.start(policy_ids, page)
        for r in started:
            await self._audit("resync", f"policy {r.policy}: resync {r.id}")
        now = time.time()
        return [r.public(now) for r in started]

    async def cancel_resync(self, *policy_ids: str) -> list[int]:
        await self._known(policy_ids)
        cancelled = await self.state.resyncs.cancel(policy_ids)  # none running: a UserError
        await self._audit(
            "cancel-resync",
            f"policy {', '.join(policy_ids)}: resync {', '.join(map(str, cancelled))}",
        )
        return cancelled

    async def _known(self, policy_ids: Sequence[str]) -> None:
        if not policy_ids:
            raise UserError("name at least one policy")
        for policy_id in policy_ids:
            await self.store.get(policy_id)

    async def resyncs(self) -> list[dict[str, Any]]:
        store, now = self.state.resyncs, time.time()
        found = [await store.latest(p.id) for p in await self.store.all()]
        return [r.public(now) for r in found if r is not None]

    async def diff(self, policy_id: str) -> list[Difference]:
        from engine.checks.diff import diff_policy

        return await diff_policy(await self.store.get(policy_id), self.book.fresh())

    async def verify(
        self,
        policy_id: str,
        sample: int | None = None,
        seed: int | None = None,
        concurrency: int = 8,
    ) -> PolicyReport:
        bounds.at_least_one(sample, "sample")
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            raise UserError(f"the concurrency must be between 1 and {MAX_CONCURRENCY}")
        from engine.checks.verify import verify_policy

        policy = await self.store.get(policy_id)
        return await verify_policy(
            policy,
            self.book.fresh(),
            sample=sample,
            rng=random.Random(seed),
            concurrency=concurrency,
        )

    async def aliases(self) -> list[dict[str, object]]:
        return [a.public() for _, a in sorted(self.book.fresh().all().items())]

    async def set_alias(self, alias: Alias, check: bool = True) -> None:
        """Add or replace an alias, after checking that its endpoint takes the keys.

        An `AliasWriter`, not on `Service`: the API takes no secrets, as it shows none."""
        if check:
            from engine.checks.endpoints import check_alias

            await check_alias(alias)
        self.book.fresh().set(alias)
        await self._audit("alias", f"set {alias.name}: {alias.url}")

    async def remove_alias(self, name: str) -> None:
        book = self.book.fresh()
        entry = book.all().get(name)
        if entry is None or entry.from_env:
            book.remove(name)  # raises the right error: unknown, or set by the environment
        users = [p.id for p in await self.store.all() if name in (p.source_alias, p.target_alias)]
        if users:
            raise UserError(
                f"alias {name!r} is used by policy {', '.join(users)}: remove those first"
            )
        book.remove(name)
        await self._audit("alias", f"remove {name}")

    async def audit(self, limit: int = 100) -> list[AuditEntry]:
        return await self.state.audit.recent(limit)

    async def _audit(self, action: str, detail: str) -> None:
        await self.state.audit.record(self.actor, action, detail)

    async def _applied(self) -> None:
        if self.engine is not None:
            await self.engine.reconfigure()


async def stored_snapshot(state: State) -> Snapshot:
    """The engine's last published snapshot if it is running, else one built from the database."""
    policies = await state.policies.all()
    counts = await state.queue.counts()
    paused = await state.policies.engine_paused()
    now = time.time()
    raw = await state.telemetry.published()
    published = _parse(raw) if raw else None
    cluster = cluster_of(await state.nodes.all())  # as of now, not as of the last publish
    if published and published.engine.running and now - (published.engine.updated_at or 0) < FRESH:
        # Exact backlog from the counters; states and policies as they are now.
        known = {p.id: p for p in published.policies}
        fresh = []
        for p in policies:
            base = known.get(p.id)
            if base is None:
                continue
            state = state_of(p, paused)
            base = replace(
                base, state=state, hold=hold(state, base.hold), bandwidth_limit=p.bandwidth
            )
            fresh.append(with_backlog(base, counts.get(p.id, Counts()), now))
        return replace(
            published,
            engine=replace(published.engine, paused=paused),
            policies=fresh,
            targets=targets(fresh, published.links),
            cluster=cluster,
        )
    telemetry = Telemetry(state.telemetry)
    await telemetry.load()
    return replace(compose(telemetry, policies, counts, paused, None, now), cluster=cluster)


def _parse(raw: str) -> Snapshot | None:
    try:
        return Snapshot.from_dict(json.loads(raw))
    except (ValueError, TypeError, KeyError):
        return None  # written by an older version: rebuilt from the database instead
