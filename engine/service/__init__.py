"""What can be asked of an engine: one interface, reached locally or over HTTP.

`Service` is the whole surface an operator's tool needs: read the snapshot,
page through tasks (all, or one failure cause's), group failures by cause,
explain one key, pause, retry, add, edit and remove policies, resync,
compare both buckets (diff, verify), list and remove aliases. `LocalService`
(`engine.service.local`) works on a state dir and on the engine running in
this process, if any; `EmbeddedEngine` runs an engine on its own thread;
`engine.service.remote.RemoteService` speaks the HTTP API, which is itself a thin
JSON layer over a `LocalService`. The CLI and the console take either, so a
remote engine is driven exactly like a local one.

Every change is validated with the same rules everywhere and written to the
audit log with the actor that made it. Failures are `engine.errors` classes on
every path, so a caller handles a missing policy or a retryable failure the
same way whether the engine is in its process or behind HTTP.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from engine.aliases import Alias
from engine.checks.explanation import Explanation
from engine.checks.report import Difference, PolicyReport
from engine.errors import MalformedError, UserError
from engine.model import Attempt, Cause, FailureGroup, Op, Task, TaskState
from engine.policy import Policy, format_tags
from engine.state.stores import AuditEntry
from engine.telemetry.snapshot import HistoryPoint, Snapshot, Transfer

MAX_PAGE = 1000


@dataclass(frozen=True)
class PolicySpec:
    """A policy as an operator writes it: strings, validated into a `Policy` by `create`."""

    source: str  # ALIAS/BUCKET
    target: str
    id: str | None = None
    priority: int | None = None
    prefix: str = ""
    tags: str = ""
    replicate: str | None = None  # comma list; None: all operations
    bandwidth: str = ""
    enabled: bool | None = None  # None: enabled when added, unchanged when edited

    @classmethod
    def of(cls, policy: Policy) -> PolicySpec:
        """The spec that gives `policy` again: edit one field of it, keep the rest."""
        return cls(
            source=policy.source,
            target=policy.target,
            id=policy.id,
            priority=policy.priority,
            prefix=policy.prefix,
            tags=format_tags(policy.tags),
            replicate=",".join(sorted(policy.replicate)),
            bandwidth=str(policy.bandwidth) if policy.bandwidth else "",
            enabled=policy.enabled,
        )


@dataclass(frozen=True)
class TaskPage:
    tasks: list[Task]
    next: int | None  # cursor for the following page; None at the end


def task_dict(task: Task) -> dict[str, Any]:
    out = asdict(task)
    out["op"], out["state"] = task.op.value, task.state.value
    return out


def cause_dict(cause: Cause) -> dict[str, str]:
    return {
        "policy": cause.policy,
        "op": cause.op.value,
        "error_class": cause.error_class,
        "code": cause.code,
    }


def parse_cause(data: dict[str, Any]) -> Cause:
    """A cause from its JSON form (or query parameters): all four parts, op a known one."""
    try:
        return Cause(
            str(data["policy"]), Op(data["op"]), str(data["error_class"]), str(data["code"])
        )
    except KeyError as exc:
        raise MalformedError(f"a cause needs policy, op, error_class and code: no {exc}") from None
    except ValueError:
        ops = ", ".join(op.value for op in Op)
        raise MalformedError(f"unknown operation {data['op']!r} (one of: {ops})") from None


def group_dict(group: FailureGroup) -> dict[str, Any]:
    out = asdict(group)
    out["cause"] = cause_dict(group.cause)
    return out


def group_of(data: dict[str, Any]) -> FailureGroup:
    return FailureGroup(**(data | {"cause": parse_cause(data["cause"])}))


def parse_states(value: str | Sequence[str]) -> list[TaskState]:
    names = [s for s in (value.split(",") if isinstance(value, str) else value) if s]
    known = {s.value: s for s in TaskState}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UserError(f"unknown task state {unknown[0]!r} (one of: {', '.join(known)})")
    return [known[n] for n in names]


class Service(abc.ABC):
    @abc.abstractmethod
    async def status(self) -> Snapshot: ...

    @abc.abstractmethod
    async def policies(self) -> list[Policy]: ...

    @abc.abstractmethod
    async def policy(self, policy_id: str) -> Policy:
        """One policy; a MissingError if there is none with this id."""

    @abc.abstractmethod
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
        """A page in id order (newest first if `descending`); `query` matches key or error;
        `cause`: only the parked tasks of that cause (a failure group's)."""

    @abc.abstractmethod
    async def failure_groups(self, policy: str | None = None) -> list[FailureGroup]:
        """Failed and retrying tasks grouped by cause, largest first (of `policy`, if given)."""

    @abc.abstractmethod
    async def explain(self, source: str, key: str) -> Explanation:
        """Why `key` of `source` (ALIAS/BUCKET) is or is not on the targets: a verdict
        (one of engine.checks.explanation.VERDICTS) and the evidence from both stores, the queue and the links."""

    @abc.abstractmethod
    async def attempts(self, task_id: int) -> list[Attempt]:
        """A task's failed attempts with their times and errors, oldest first."""

    @abc.abstractmethod
    async def transfers(self) -> list[Transfer]: ...

    @abc.abstractmethod
    async def history(self, since: float, policy: str | None = None) -> list[HistoryPoint]: ...

    @abc.abstractmethod
    async def set_paused(self, paused: bool, policy: str | None = None) -> None:
        """Pause or resume one policy, or the whole engine (policy None)."""

    @abc.abstractmethod
    async def retry(self, ids: Sequence[int] = (), policy: str | None = None) -> int:
        """Queue failed/retrying tasks again: these ids, or (no ids) all of them."""

    @abc.abstractmethod
    async def add_policy(self, spec: PolicySpec) -> Policy: ...

    @abc.abstractmethod
    async def update_policy(self, policy_id: str, spec: PolicySpec) -> Policy:
        """Replace a policy's settings; its id, creation time and pause flag stay."""

    @abc.abstractmethod
    async def set_enabled(self, policy_id: str, enabled: bool) -> None: ...

    @abc.abstractmethod
    async def remove_policy(self, policy_id: str) -> None: ...

    @abc.abstractmethod
    async def start_resync(
        self, *policy_ids: str, page_size: int | None = None
    ) -> list[dict[str, Any]]:
        """Walk each policy's whole source again and queue what differs on the target.

        All or none: if one of them is already running, none starts. `page_size`
        (versions listed and checkpointed at a time) defaults to the engine's."""

    @abc.abstractmethod
    async def cancel_resync(self, *policy_ids: str) -> list[int]:
        """Stop the running resyncs of these policies; their ids (none running: a UserError)."""

    @abc.abstractmethod
    async def resyncs(self) -> list[dict[str, Any]]:
        """The latest resync of each policy that had one (see Resync.public)."""

    @abc.abstractmethod
    async def diff(self, policy_id: str) -> list[Difference]:
        """Compare the latest listing entries of source and target, trusting no local state."""

    @abc.abstractmethod
    async def verify(
        self,
        policy_id: str,
        sample: int | None = None,
        seed: int | None = None,
        concurrency: int = 8,
    ) -> PolicyReport:
        """Read both copies of every key (or of `sample` keys drawn with `seed`) and compare."""

    @abc.abstractmethod
    async def aliases(self) -> list[dict[str, object]]:
        """The aliases the engine knows, as `Alias.public()` shows them (secrets masked)."""

    @abc.abstractmethod
    async def remove_alias(self, name: str) -> None:
        """Forget alias `name`; refused while a policy uses it."""

    @abc.abstractmethod
    async def audit(self, limit: int = 100) -> list[AuditEntry]: ...

    @abc.abstractmethod
    async def close(self) -> None:
        """Let go of connections. A remote or local engine runs on; an embedded one drains."""


class AliasWriter(abc.ABC):
    """An engine that can be handed an endpoint's secret keys: one on this machine.

    Apart from `Service` on purpose: the HTTP API takes no secrets in, as it shows
    none, so a remote engine has no way to accept them. A front end asks
    `isinstance(service, AliasWriter)` and, when it is not, says why (the CLI's
    `alias set` works on the engine's own state dir)."""

    @abc.abstractmethod
    async def set_alias(self, alias: Alias, check: bool = True) -> None:
        """Add or replace an alias, after checking that its endpoint takes the keys."""


def next_step(aliases: int, policies: int) -> str | None:
    """What a newcomer with nothing configured should do next (None once replicating)."""
    if aliases == 0:
        return (
            "no endpoints yet: add one with `mirrorline alias set NAME URL` (it asks for the keys)"
            " (or `A` in the console), or see replication live with `mirrorline demo`"
        )
    if policies == 0:
        return (
            "no policies yet: `mirrorline replicate add ALIAS/BUCKET --remote-target ALIAS/BUCKET`"
            " (or `a` in the console)"
        )
    return None
