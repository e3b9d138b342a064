"""Configuration into a running engine: aliases.json and the stored policies, as routes.

Re-read every second (and at once when kicked), so the CLI or the API changes a
running engine without a restart. What cannot be read or does not add up keeps
the last good configuration running; the problem is in the snapshot until fixed.
A route is rebuilt only when its policy changed: a rebuilt route would lose the
target's warm connections and the policy's bandwidth meter.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Protocol

from engine.config import EngineConfig
from engine.endpoints import Endpoints
from engine.errors import MirrorlineError
from engine.policy import Policy
from engine.replication.bandwidth import TokenBucket
from engine.replication.budget import ByteBudget
from engine.replication.detector import Detector
from engine.replication.dispatcher import Dispatcher, Recorder, Route
from engine.replication.health import Link
from engine.replication.transfer import TransferContext
from engine.s3.identity import place_of
from engine.s3.origin import origin_of
from engine.state.queue import TaskQueue
from engine.state.stores import PolicyStore
from engine.telemetry.stats import Telemetry

log = logging.getLogger("mirrorline.engine")


class Running(Protocol):
    """What configuring reads and sets of the engine it configures (the engine satisfies it)."""

    config: EngineConfig
    policies: dict[str, Policy]
    all_policies: list[Policy]
    paused: bool
    dispatchers: dict[str, Dispatcher]
    detector: Detector
    endpoints: Endpoints
    links: dict[str, Link]
    store: PolicyStore
    queue: TaskQueue
    recorder: Recorder
    telemetry: Telemetry

    def spawn(self, coro: Awaitable[None], vital: bool = True) -> asyncio.Task[None]: ...


class Configurator:
    def __init__(self, engine: Running) -> None:
        self.engine = engine
        self.problem = ""  # what is wrong with the configuration now ("" when nothing)
        self.reloads = 0  # configuration reloads so far: what a webhook event must not cost
        self.settle_until = 0.0  # see TransferContext.settle_until
        self._applying = asyncio.Lock()
        config = engine.config
        self._part_budget = ByteBudget(config.part_budget * config.part_size)
        self._limits: dict[str, TokenBucket] = {}
        self._looped: set[str] = set()  # policies refused as onto themselves, logged once

    def _configured(self, problem: str) -> None:
        """Note what is wrong with the configuration now; say so once, and once when fixed."""
        if problem == self.problem:
            return
        if problem:
            log.error("configuration: %s (keeping the last good configuration)", problem)
        else:
            log.warning("configuration: fixed, in use again")
        self.problem = problem

    def _load_aliases(self) -> None:
        """New aliases.json: routes and scans built on a replaced client go, to be rebuilt."""
        changed = self.engine.endpoints.load()
        for dispatcher in self.engine.dispatchers.values():
            for pid, route in list(dispatcher.routes.items()):
                if {route.source_link.alias, route.target_link.alias} & set(changed):
                    del dispatcher.routes[pid]
                    self.engine.policies.pop(pid, None)
                    self.engine.detector.stop(pid)

    async def apply(self) -> None:
        """Apply the configuration now (the loop's tick, a kick, an API call)."""
        async with self._applying:  # the API may reload while the loop does
            await self._apply()

    async def _apply(self) -> None:
        """Apply aliases.json and the policies as they are now, or keep the last good ones.

        A bad aliases file keeps the aliases in use; policies that cannot be read keep
        the policies in use; either way the engine goes on replicating, and the problem
        is in the snapshot (`engine.config_error`) until it is fixed."""
        self.reloads += 1
        problems = []
        try:
            self._load_aliases()
        except MirrorlineError as exc:
            problems.append(exc.reason)
        try:
            paused = await self.engine.store.engine_paused()
            policies = await self.engine.store.all()
        except MirrorlineError as exc:
            self._configured("; ".join([*problems, exc.reason]))
            return
        self.engine.paused, self.engine.all_policies = paused, policies
        problems += [
            f"policy {p.id} names alias {name!r}, which is not set"
            for p in policies
            if p.enabled
            for name in dict.fromkeys((p.source_alias, p.target_alias))
            if name not in self.engine.endpoints.aliases
        ]
        self._configured("; ".join(problems))
        wanted = {
            p.id: p
            for p in self.engine.all_policies
            if p.enabled
            and p.source_alias in self.engine.endpoints.aliases
            and p.target_alias in self.engine.endpoints.aliases
            and not await self._onto_itself(p)
        }
        present = {p.id for p in self.engine.all_policies}
        for pid in set(self.engine.policies) - set(wanted):
            self._retire(pid)
            if pid not in present:  # removed, not just disabled: its numbers go too
                self.engine.telemetry.forget(pid)
        for pid, policy in wanted.items():
            route = self._route(policy)
            route.active = not (paused or policy.paused)
            self.engine.policies[pid] = policy
            self.engine.detector.start(pid)
        for dispatcher in self.engine.dispatchers.values():
            dispatcher.wake()

    async def _onto_itself(self, policy: Policy) -> bool:
        """A policy whose source and target are one bucket under two aliases never runs:
        each copy would be a new source version to copy again (stored before the check
        refused such pairs, or an alias's URL changed since)."""
        source, target = (
            self.engine.endpoints.aliases[policy.source_alias],
            self.engine.endpoints.aliases[policy.target_alias],
        )
        here = await place_of(source, policy.source_bucket)
        if not here.same(await place_of(target, policy.target_bucket)):
            self._looped.discard(policy.id)
            return False
        if policy.id not in self._looped:
            self._looped.add(policy.id)
            log.error(
                "policy %s not run: %s and %s are the same bucket (%s)",
                policy.id,
                policy.source,
                policy.target,
                here,
            )
        return True

    def _route(self, policy: Policy) -> Route:
        dispatcher = self.engine.dispatchers.get(policy.target_alias)
        if dispatcher is None:
            dispatcher = Dispatcher(
                policy.target_alias,
                self.engine.queue,
                self.engine.recorder,
                self.engine.config.workers,
                self.engine.config.retry,
                on_error=lambda task, error: self.engine.telemetry.failed(
                    task.policy, error, time.time()
                ),
            )
            self.engine.dispatchers[policy.target_alias] = dispatcher
            self.engine.spawn(dispatcher.run())
        old = self.engine.policies.get(policy.id)
        route = dispatcher.routes.get(policy.id)
        if route is None or old != policy:
            limit = self._limits.setdefault(policy.id, TokenBucket(policy.bandwidth))
            limit.set_rate(policy.bandwidth)
            context = TransferContext(
                policy=policy,
                source=self.engine.endpoints.client(policy.source_alias),
                target=self.engine.endpoints.client(policy.target_alias),
                source_origin=origin_of(
                    self.engine.endpoints.aliases[policy.source_alias], policy.source_bucket
                ),
                target_origin=origin_of(
                    self.engine.endpoints.aliases[policy.target_alias], policy.target_bucket
                ),
                part_size=self.engine.config.part_size,
                part_budget=self._part_budget,
                stream_from=self.engine.config.stream_from,
                multipart_from=self.engine.config.multipart_from,
                settle_until=self.settle_until,
                limit=limit if policy.bandwidth else None,
                on_bytes=lambda n, pid=policy.id: self.engine.telemetry.streamed(pid, n),
            )
            route = Route(
                context,
                self.engine.links[policy.source_alias],
                self.engine.links[policy.target_alias],
                policy.priority,
            )
            dispatcher.routes[policy.id] = route
        return route

    def _retire(self, pid: str) -> None:
        policy = self.engine.policies.pop(pid)
        self.engine.dispatchers[policy.target_alias].routes.pop(pid, None)
        self.engine.detector.stop(pid)
