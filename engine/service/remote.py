"""`RemoteService`: the `Service` interface over a running engine's HTTP API.

The CLI's `--connect URL` and the console's remote mode use it; they see the
same values as in-process callers (snapshots are rebuilt into the same
dataclasses), and the same errors: the API names each failure's class (`kind`)
and it is raised here again, so a missing policy is a MissingError and a
retryable failure in the engine stays retryable. An unreachable engine is
transient, a refused token a user error.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from engine.checks.report import Difference, PolicyReport
from engine.errors import (
    BY_KIND,
    MalformedError,
    MirrorlineError,
    MissingError,
    TransientError,
    UserError,
)
from engine.model import Attempt, Cause, FailureGroup, Op, Task, TaskState
from engine.policy import Policy
from engine.service import (
    AuditEntry,
    Explanation,
    PolicySpec,
    Service,
    TaskPage,
    cause_dict,
    group_of,
)
from engine.telemetry.snapshot import HistoryPoint, Snapshot, Transfer, build

# httpx loads its own command line (rich and pygments, a third of a `--connect` command's
# start-up) whenever they are installed, as textual installs them; a client never runs it.
# Marked absent, it is skipped the way httpx skips it without its `cli` extra.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

import httpx  # noqa: E402

# diff and verify read whole buckets: no limit on the wait for their answer
SLOW = httpx.Timeout(10.0, read=None)


def _task(data: dict[str, Any]) -> Task:
    return Task(**(data | {"op": Op(data["op"]), "state": TaskState(data["state"])}))


def _policy(data: dict[str, Any]) -> Policy:
    fields = set(Policy.__dataclass_fields__)
    values = {k: v for k, v in data.items() if k in fields}
    values["replicate"] = frozenset(data.get("replicate", []))
    return Policy(**values)


def _part(value: str | int) -> str:
    """A value as one path segment: an id with a '/' or '?' in it stays one."""
    return quote(str(value), safe="")


def _spec(spec: PolicySpec) -> dict[str, Any]:
    return {k: v for k, v in spec.__dict__.items() if v is not None}


def error_of(status: int, data: Any, where: str) -> MirrorlineError:
    """The API's error answer as the class it was raised as; by status from another
    server (a proxy's 502 page, say), as `where` answered it."""
    body = data if isinstance(data, dict) else {}
    reason = str(body.get("error") or f"{where} answered HTTP {status}")
    kind = BY_KIND.get(str(body.get("kind")))
    if kind is None:
        if status in (429, 502, 503, 504):
            kind = TransientError
        elif status >= 500:
            kind = MirrorlineError
        else:
            kind = {400: MalformedError, 404: MissingError}.get(status, UserError)
    return kind(reason)


class RemoteService(Service):
    def __init__(
        self,
        url: str,
        token: str,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise UserError(f"--connect {url!r}: expected http://HOST:PORT")
        if not token:
            raise UserError("--connect needs a token: --token or $MIRRORLINE_TOKEN")
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,  # tests: the app in process (httpx.ASGITransport)
        )

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        if self._http.is_closed:  # a console's last poll, racing its own quit
            raise TransientError(f"closed: no more requests to the engine at {self.url}")
        try:
            resp = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise TransientError(
                f"cannot reach the engine at {self.url}: {type(exc).__name__}",
                code="Connection",
                endpoint=self.url,
            ) from None
        if resp.status_code == 401:
            raise UserError(f"the engine at {self.url} refused the token")
        try:
            data = resp.json()
        except ValueError:
            data = None
        if resp.is_error:
            raise error_of(resp.status_code, data, f"the engine at {self.url}")
        if data is None:
            raise TransientError(
                f"the engine at {self.url} answered HTTP {resp.status_code} without JSON"
            )
        return data

    async def status(self) -> Snapshot:
        return Snapshot.from_dict(await self._call("GET", "/v1/status"))

    async def policies(self) -> list[Policy]:
        return [_policy(p) for p in await self._call("GET", "/v1/policies")]

    async def policy(self, policy_id: str) -> Policy:
        return _policy(await self._call("GET", f"/v1/policies/{_part(policy_id)}"))

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
        params: dict[str, str | int] = {"limit": limit, "after": after}
        if cause is not None:
            params |= {f"cause_{k}": v for k, v in cause_dict(cause).items()}
        if query:
            params["q"] = query
        if descending:
            params["order"] = "desc"
        if states:
            params["state"] = ",".join(s.value for s in states)
        if policy:
            params["policy"] = policy
        data = await self._call("GET", "/v1/tasks", params=params)
        return TaskPage([_task(t) for t in data["tasks"]], data["next"])

    async def failure_groups(self, policy: str | None = None) -> list[FailureGroup]:
        params = {"by": "cause"} | ({"policy": policy} if policy else {})
        found = await self._call("GET", "/v1/failures", params=params)
        return [group_of(g) for g in found["groups"]]

    async def explain(self, source: str, key: str) -> Explanation:
        params = {"source": source, "key": key}
        found = await self._call("GET", "/v1/explain", params=params, timeout=SLOW)
        return Explanation.from_dict(found)

    async def attempts(self, task_id: int) -> list[Attempt]:
        return build(list[Attempt], await self._call("GET", f"/v1/tasks/{task_id}/attempts"))

    async def transfers(self) -> list[Transfer]:
        return build(list[Transfer], await self._call("GET", "/v1/transfers"))

    async def history(self, since: float, policy: str | None = None) -> list[HistoryPoint]:
        params: dict[str, str | float] = {"since": since}
        if policy:
            params["policy"] = policy
        return build(list[HistoryPoint], await self._call("GET", "/v1/history", params=params))

    async def set_paused(self, paused: bool, policy: str | None = None) -> None:
        await self._call("POST", "/v1/pause" if paused else "/v1/resume", json={"policy": policy})

    async def retry(self, ids: Sequence[int] = (), policy: str | None = None) -> int:
        body: dict[str, Any] = {"ids": list(ids)} if ids else {"all": True}
        if policy:
            body["policy"] = policy
        return int((await self._call("POST", "/v1/retry", json=body))["requeued"])

    async def add_policy(self, spec: PolicySpec) -> Policy:
        return _policy(await self._call("POST", "/v1/policies", json=_spec(spec)))

    async def update_policy(self, policy_id: str, spec: PolicySpec) -> Policy:
        return _policy(
            await self._call("PUT", f"/v1/policies/{_part(policy_id)}", json=_spec(spec))
        )

    async def set_enabled(self, policy_id: str, enabled: bool) -> None:
        await self._call(
            "POST", f"/v1/policies/{_part(policy_id)}/enabled", json={"enabled": enabled}
        )

    async def remove_policy(self, policy_id: str) -> None:
        await self._call("DELETE", f"/v1/policies/{_part(policy_id)}")

    async def start_resync(
        self, *policy_ids: str, page_size: int | None = None
    ) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"policies": list(policy_ids)}
        if page_size is not None:
            body["page_size"] = page_size
        return list(await self._call("POST", "/v1/resync", json=body))

    async def cancel_resync(self, *policy_ids: str) -> list[int]:
        body = {"policies": list(policy_ids)}
        return list((await self._call("POST", "/v1/resync/cancel", json=body))["resyncs"])

    async def resyncs(self) -> list[dict[str, Any]]:
        return list(await self._call("GET", "/v1/resync"))

    async def diff(self, policy_id: str) -> list[Difference]:
        found = await self._call("GET", f"/v1/policies/{_part(policy_id)}/diff", timeout=SLOW)
        return build(list[Difference], found)

    async def verify(
        self,
        policy_id: str,
        sample: int | None = None,
        seed: int | None = None,
        concurrency: int = 8,
    ) -> PolicyReport:
        body = {"sample": sample, "seed": seed, "concurrency": concurrency}
        path = f"/v1/policies/{_part(policy_id)}/verify"
        return build(PolicyReport, await self._call("POST", path, json=body, timeout=SLOW))

    async def aliases(self) -> list[dict[str, object]]:
        return list(await self._call("GET", "/v1/aliases"))

    async def remove_alias(self, name: str) -> None:
        await self._call("DELETE", f"/v1/aliases/{_part(name)}")

    async def audit(self, limit: int = 100) -> list[AuditEntry]:
        return build(
            list[AuditEntry], await self._call("GET", "/v1/audit", params={"limit": limit})
        )

    async def close(self) -> None:
        await self._http.aclose()
