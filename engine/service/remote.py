"""`RemoteService`: the `Service` interface over a running engine's HTTP API.

The CLI's `--connect URL` and the console's remote mode use it; they see the
same values as in-process callers (snapshots are rebuilt into the same
dataclasses), and every failure is a `MirrorlineError` with a readable reason:
an unreachable engine is transient, a refused token or request is a user error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from engine.errors import TransientError, UserError
from engine.model import Attempt, Op, Task, TaskState
from engine.policy import Policy
from engine.service import AuditEntry, PolicySpec, Service, TaskPage
from engine.telemetry.snapshot import HistoryPoint, Snapshot, Transfer, build


def _task(data: dict[str, Any]) -> Task:
    return Task(**(data | {"op": Op(data["op"]), "state": TaskState(data["state"])}))


def _policy(data: dict[str, Any]) -> Policy:
    fields = set(Policy.__dataclass_fields__)
    values = {k: v for k, v in data.items() if k in fields}
    values["replicate"] = frozenset(data.get("replicate", []))
    return Policy(**values)


def _spec(spec: PolicySpec) -> dict[str, Any]:
    return {k: v for k, v in spec.__dict__.items() if v is not None}


class RemoteService(Service):
    def __init__(self, url: str, token: str, timeout: float = 10.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise UserError(f"--connect {url!r}: expected http://HOST:PORT")
        if not token:
            raise UserError("--connect needs a token: --token or $MIRRORLINE_TOKEN")
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
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
            raise TransientError(
                f"the engine at {self.url} answered HTTP {resp.status_code} without JSON"
            ) from None
        if resp.is_error:
            message = data.get("error") if isinstance(data, dict) else None
            raise UserError(message or f"HTTP {resp.status_code}")
        return data

    async def status(self) -> Snapshot:
        return Snapshot.from_dict(await self._call("GET", "/v1/status"))

    async def policies(self) -> list[Policy]:
        return [_policy(p) for p in await self._call("GET", "/v1/policies")]

    async def tasks(
        self,
        states: Sequence[TaskState] = (),
        policy: str | None = None,
        limit: int = 100,
        after: int = 0,
        query: str = "",
        descending: bool = False,
    ) -> TaskPage:
        params: dict[str, str | int] = {"limit": limit, "after": after}
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
        return _policy(await self._call("PUT", f"/v1/policies/{policy_id}", json=_spec(spec)))

    async def set_enabled(self, policy_id: str, enabled: bool) -> None:
        await self._call("POST", f"/v1/policies/{policy_id}/enabled", json={"enabled": enabled})

    async def remove_policy(self, policy_id: str) -> None:
        await self._call("DELETE", f"/v1/policies/{policy_id}")

    async def start_resync(self, policy_id: str) -> dict[str, Any]:
        return dict(await self._call("POST", "/v1/resync", json={"policy": policy_id}))

    async def cancel_resync(self, policy_id: str) -> None:
        await self._call("DELETE", f"/v1/resync/{policy_id}")

    async def resyncs(self) -> list[dict[str, Any]]:
        return list(await self._call("GET", "/v1/resync"))

    async def audit(self, limit: int = 100) -> list[AuditEntry]:
        return build(
            list[AuditEntry], await self._call("GET", "/v1/audit", params={"limit": limit})
        )

    async def close(self) -> None:
        await self._http.aclose()
