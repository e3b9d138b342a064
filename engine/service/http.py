"""The HTTP API: a thin JSON layer over `LocalService`, behind a bearer token.

    GET  /v1/status            the telemetry snapshot
    GET  /v1/policies          POST /v1/policies    GET|PUT|DELETE /v1/policies/{id}
    POST /v1/policies/{id}/enabled {"enabled": bool}
    GET  /v1/policies/{id}/diff                     POST /v1/policies/{id}/verify
                               {"sample": N?, "seed": N?, "concurrency": N?}
    GET  /v1/tasks?state=failed&policy=ID&limit=N&after=CURSOR   GET /v1/tasks/{id}/attempts
         (&cause_policy=&cause_op=&cause_error_class=&cause_code=: one cause's parked tasks)
    GET  /v1/failures?by=cause&policy=ID   failed+retrying tasks grouped by cause
    GET  /v1/explain?source=ALIAS/BUCKET&key=KEY   one object's verdict and evidence
    GET  /v1/transfers         GET /v1/history?since=UNIX&policy=ID
    POST /v1/pause  /v1/resume {"policy": ID?}     POST /v1/retry {"ids": [...]} | {"all": true}
    GET  /v1/audit             POST /v1/events/minio (MinIO's webhook)
    GET  /v1/resync            POST /v1/resync {"policy": ID} | {"policies": [ID], "page_size": N?}
    DELETE /v1/resync/{id}     POST /v1/resync/cancel {"policies": [ID]}
    GET  /v1/aliases           DELETE /v1/aliases/{name}
    GET  /metrics              Prometheus (public with --metrics-public)

Every error is JSON `{"error": "...", "kind": "..."}`, answered with the
status of its class in engine.errors: 400 (malformed request), 404 (no such
policy, alias or resync), 413 (a body over 64 KiB, or 4 MiB for the webhook:
engine.service.parsing), 422 (well-formed but refused), 503 (retryable: an
endpoint or the engine is busy or down); 401 is a missing or wrong token. An
unexpected failure is logged and answered 500 without details. Aliases are
shown only as `Alias.public()` masks them and none is ever taken in, so no
secret can leave or enter through the API.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine.errors import MalformedError, MirrorlineError, MissingError, UserError
from engine.model import Cause
from engine.policy import Policy
from engine.service import PolicySpec, group_dict, parse_cause, parse_states, task_dict
from engine.service.local import LocalService
from engine.service.parsing import (
    WEBHOOK_LIMIT,
    body_of,
    field,
    number,
    only,
    order,
    policy_ids,
)
from engine.service.webhook import ingest, parse
from engine.telemetry.prometheus import CONTENT_TYPE, render

log = logging.getLogger("mirrorline.api")
Handler = Callable[[Request], Awaitable[Response]]


def error(status: int, message: str, kind: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": message, "kind": kind}, status, headers=headers)


class TokenAuth(BaseHTTPMiddleware):
    """`Authorization: Bearer TOKEN`, the scheme in any case (RFC 9110 says it is
    case-insensitive, and some webhook senders write `bearer`)."""

    def __init__(self, app: Any, token: str, public: frozenset[str]) -> None:
        super().__init__(app)
        self._expected = token.encode()
        self._public = public

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if request.url.path not in self._public:
            given = request.headers.get("authorization", "")
            if not given:
                return error(401, "missing Authorization: Bearer TOKEN", UserError.kind)
            scheme, _, credentials = given.strip().partition(" ")
            if scheme.lower() != "bearer" or not secrets.compare_digest(
                credentials.strip().encode(errors="replace"), self._expected
            ):
                return error(401, "wrong token", UserError.kind)
        return await call_next(request)


def cause_of(params: Any) -> Cause | None:
    """The cause named by cause_* query parameters: all four, or none."""
    given = {k[6:]: v for k, v in params.items() if k.startswith("cause_")}
    return parse_cause(given) if given else None


def guarded(handler: Handler) -> Handler:
    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except MirrorlineError as exc:
            return error(exc.status, exc.reason, exc.kind)
        except Exception:
            log.exception("%s %s failed", request.method, request.url.path)
            return error(500, "internal error (see the engine log)", MirrorlineError.kind)

    return run


def create_app(
    service: LocalService,
    token: str,
    metrics_public: bool = False,
    extra: Sequence[Route] = (),
) -> Starlette:
    """The API over `service`; `extra` routes (the demo's) get the same token and errors."""

    async def status(request: Request) -> Response:
        return JSONResponse((await service.status()).to_dict())

    async def described(found: list[Policy]) -> list[dict[str, object]]:
        """Each policy as it is set, with its live state from the snapshot."""
        states = {p.id: p.state for p in (await service.status()).policies}
        return [p.public() | {"state": states.get(p.id, "")} for p in found]

    async def policies(request: Request) -> Response:
        return JSONResponse(await described(await service.policies()))

    async def one_policy(request: Request) -> Response:
        policy = await service.policy(request.path_params["policy_id"])
        return JSONResponse((await described([policy]))[0])

    async def spec_of(request: Request) -> PolicySpec:
        data = only(await body_of(request), frozenset(PolicySpec.__dataclass_fields__))
        for name in ("source", "target"):
            if not field(data, name, str):
                raise MalformedError(f"'{name}' is required (ALIAS/BUCKET)")
        replicate = field(data, "replicate", (str, list))
        if isinstance(replicate, list):
            replicate = ",".join(map(str, replicate))
        return PolicySpec(
            source=data["source"],
            target=data["target"],
            id=field(data, "id", str),
            priority=field(data, "priority", int),
            prefix=field(data, "prefix", str, ""),
            tags=field(data, "tags", str, ""),
            replicate=replicate,
            bandwidth=str(field(data, "bandwidth", (str, int), "") or ""),
            enabled=field(data, "enabled", bool),
        )

    async def add_policy(request: Request) -> Response:
        policy = await service.add_policy(await spec_of(request))
        return JSONResponse(policy.public(), 201)

    async def update_policy(request: Request) -> Response:
        policy_id = request.path_params["policy_id"]
        policy = await service.update_policy(policy_id, await spec_of(request))
        return JSONResponse(policy.public())

    async def set_enabled(request: Request) -> Response:
        policy_id = request.path_params["policy_id"]
        enabled = field(await body_of(request), "enabled", bool)
        if enabled is None:
            raise MalformedError("'enabled' is required (true or false)")
        await service.set_enabled(policy_id, enabled)
        return JSONResponse({"policy": policy_id, "enabled": enabled})

    async def remove_policy(request: Request) -> Response:
        policy_id = request.path_params["policy_id"]
        await service.remove_policy(policy_id)
        return JSONResponse({"removed": policy_id})

    async def tasks(request: Request) -> Response:
        q = request.query_params
        page = await service.tasks(
            parse_states(q.get("state", "")),
            q.get("policy") or None,
            number(q, "limit", 100),
            number(q, "after", 0),
            q.get("q", ""),
            order(q.get("order", "asc")),
            cause_of(q),
        )
        return JSONResponse({"tasks": [task_dict(t) for t in page.tasks], "next": page.next})

    async def failures(request: Request) -> Response:
        q = request.query_params
        if q.get("by", "cause") not in ("cause", "reason"):
            raise MalformedError("'by' must be cause (or reason)")
        groups = await service.failure_groups(q.get("policy") or None)
        return JSONResponse({"groups": [group_dict(g) for g in groups]})

    async def explain(request: Request) -> Response:
        q = request.query_params
        source, key = q.get("source"), q.get("key")
        if not source or not key:
            raise MalformedError("'source' (ALIAS/BUCKET) and 'key' are required")
        return JSONResponse((await service.explain(source, key)).to_dict())

    async def attempts(request: Request) -> Response:
        try:
            task_id = int(request.path_params["task_id"])
        except ValueError:
            raise MalformedError("the task id must be a number") from None
        return JSONResponse([asdict(a) for a in await service.attempts(task_id)])

    async def transfers(request: Request) -> Response:
        return JSONResponse([asdict(t) for t in await service.transfers()])

    async def history(request: Request) -> Response:
        q = request.query_params
        points = await service.history(number(q, "since", 0.0, float), q.get("policy") or None)
        return JSONResponse([asdict(p) for p in points])

    def pauser(paused: bool) -> Handler:
        async def handle(request: Request) -> Response:
            policy = field(await body_of(request), "policy", str)
            await service.set_paused(paused, policy)
            return JSONResponse({"paused": paused, "policy": policy})

        return handle

    async def retry(request: Request) -> Response:
        data = await body_of(request)
        ids = field(data, "ids", list, [])
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise MalformedError("'ids' must be a list of task ids")
        if bool(ids) == bool(field(data, "all", bool, False)):
            raise MalformedError("give either 'ids' or 'all': true")
        count = await service.retry(ids, field(data, "policy", str))
        return JSONResponse({"requeued": count})

    async def diff(request: Request) -> Response:
        found = await service.diff(request.path_params["policy_id"])
        return JSONResponse([asdict(d) for d in found])

    async def verify(request: Request) -> Response:
        data = only(await body_of(request), frozenset({"sample", "seed", "concurrency"}))
        report = await service.verify(
            request.path_params["policy_id"],
            field(data, "sample", int),
            field(data, "seed", int),
            field(data, "concurrency", int, 8),
        )
        return JSONResponse(asdict(report))

    async def resyncs(request: Request) -> Response:
        return JSONResponse(await service.resyncs())

    async def start_resync(request: Request) -> Response:
        """One policy ({"policy": ID}: the resync) or several, all or none (a list)."""
        data = only(await body_of(request), frozenset({"policy", "policies", "page_size"}))
        one, many = field(data, "policy", str), policy_ids(data, "policies")
        if bool(one) == bool(many):
            raise MalformedError("give either 'policy' or 'policies'")
        page_size = field(data, "page_size", int)
        started = await service.start_resync(*(many or [one]), page_size=page_size)
        return JSONResponse(started[0] if one else started, 201)

    async def cancel_resync(request: Request) -> Response:
        policy = request.path_params["policy_id"]
        await service.cancel_resync(policy)
        return JSONResponse({"cancelled": policy})

    async def cancel_resyncs(request: Request) -> Response:
        many = policy_ids(only(await body_of(request), frozenset({"policies"})), "policies")
        if not many:
            raise MalformedError("'policies' is required")
        return JSONResponse({"resyncs": await service.cancel_resync(*many)})

    async def aliases(request: Request) -> Response:
        return JSONResponse(await service.aliases())

    async def remove_alias(request: Request) -> Response:
        name = request.path_params["name"]
        await service.remove_alias(name)
        return JSONResponse({"removed": name})

    async def audit(request: Request) -> Response:
        limit = number(request.query_params, "limit", 100)
        return JSONResponse([asdict(a) for a in await service.audit(max(1, min(limit, 1000)))])

    async def minio_events(request: Request) -> Response:
        records = parse(await body_of(request, WEBHOOK_LIMIT))
        done = await ingest(
            records,
            await service.policies(),
            service.queue,
            request.query_params.get("alias") or None,
        )
        if service.engine is not None:
            service.engine.wake(done.policies)  # only those dispatchers: no reload
        return JSONResponse({"records": len(records), "enqueued": done.enqueued})

    async def metrics(request: Request) -> Response:
        snap = await service.status()
        return Response(render(lambda: snap), media_type=CONTENT_TYPE)

    routes = [
        Route("/v1/status", guarded(status)),
        Route("/v1/policies", guarded(policies)),
        Route("/v1/policies", guarded(add_policy), methods=["POST"]),
        Route("/v1/policies/{policy_id}", guarded(one_policy)),
        Route("/v1/policies/{policy_id}", guarded(remove_policy), methods=["DELETE"]),
        Route("/v1/policies/{policy_id}", guarded(update_policy), methods=["PUT"]),
        Route("/v1/policies/{policy_id}/enabled", guarded(set_enabled), methods=["POST"]),
        Route("/v1/policies/{policy_id}/diff", guarded(diff)),
        Route("/v1/policies/{policy_id}/verify", guarded(verify), methods=["POST"]),
        Route("/v1/tasks", guarded(tasks)),
        Route("/v1/tasks/{task_id}/attempts", guarded(attempts)),
        Route("/v1/failures", guarded(failures)),
        Route("/v1/explain", guarded(explain)),
        Route("/v1/transfers", guarded(transfers)),
        Route("/v1/history", guarded(history)),
        Route("/v1/pause", guarded(pauser(True)), methods=["POST"]),
        Route("/v1/resume", guarded(pauser(False)), methods=["POST"]),
        Route("/v1/retry", guarded(retry), methods=["POST"]),
        Route("/v1/audit", guarded(audit)),
        Route("/v1/resync", guarded(resyncs)),
        Route("/v1/resync", guarded(start_resync), methods=["POST"]),
        Route("/v1/resync/cancel", guarded(cancel_resyncs), methods=["POST"]),
        Route("/v1/resync/{policy_id}", guarded(cancel_resync), methods=["DELETE"]),
        Route("/v1/aliases", guarded(aliases)),
        Route("/v1/aliases/{name}", guarded(remove_alias), methods=["DELETE"]),
        Route("/v1/events/minio", guarded(minio_events), methods=["POST"]),
        Route("/metrics", guarded(metrics)),
        *(Route(r.path, guarded(r.endpoint), methods=r.methods) for r in extra),
    ]
    public = frozenset({"/metrics"} if metrics_public else ())

    async def not_found(request: Request, exc: Exception) -> Response:
        message = f"no such endpoint: {request.method} {request.url.path}"
        return error(404, message, MissingError.kind)

    async def not_allowed(request: Request, exc: Exception) -> Response:
        message = f"{request.method} is not allowed on {request.url.path}"
        return error(405, message, MalformedError.kind)

    return Starlette(
        routes=routes,
        middleware=[Middleware(TokenAuth, token=token, public=public)],
        exception_handlers={404: not_found, 405: not_allowed},
    )
