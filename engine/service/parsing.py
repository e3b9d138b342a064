"""Reading a request: its JSON body, typed fields and query numbers.

Each mistake is a MalformedError (HTTP 400): the request cannot be read, as
opposed to read and refused (a UserError, 422). A body over its limit is a
TooLargeError (413), refused from its Content-Length when it says so, else
while it streams in, so an endless body never fills the engine's memory:
JSON_LIMIT for the API's own requests (a policy is a few hundred bytes),
WEBHOOK_LIMIT for MinIO's event posts (MinIO sends one record per request;
a batch of a thousand records is about 1.5 MiB). The ranges of the numbers
are the service's to check (engine.service.bounds), for every front end.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from engine.errors import MalformedError, TooLargeError

KiB = 1024
JSON_LIMIT = 64 * KiB
WEBHOOK_LIMIT = 4 * 1024 * KiB


async def read_body(request: Request, limit: int) -> bytes:
    """The body, at most `limit` bytes of it; more is a TooLargeError."""
    too_large = TooLargeError(f"the request body is over {limit // KiB} KiB")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def body_of(request: Request, limit: int = JSON_LIMIT) -> dict[str, Any]:
    raw = await read_body(request, limit)
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: [[[[...]]]] nested too deep
        raise MalformedError("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise MalformedError("the body must be a JSON object")
    return data


def field(
    data: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = None
) -> Any:
    """A typed body field; JSON true is not a number here, though Python thinks so."""
    value = data.get(name, default)
    if value is None:
        return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise MalformedError(f"'{name}' must be a {'/'.join(k.__name__ for k in kinds)}")
    return value


def only(data: dict[str, Any], names: set[str] | frozenset[str]) -> dict[str, Any]:
    """The body, refused if it has a field nobody reads (a typo would pass unnoticed)."""
    unknown = set(data) - names
    if unknown:
        raise MalformedError(f"unknown field '{sorted(unknown)[0]}'")
    return data


def policy_ids(data: dict[str, Any], name: str) -> list[str]:
    value = field(data, name, list, [])
    if not all(isinstance(v, str) and v for v in value):
        raise MalformedError(f"'{name}' must be a list of policy ids")
    return list(value)


def number(params: Any, name: str, default: float, kind: type = int) -> Any:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise MalformedError(f"'{name}' must be a number") from None


def order(value: str) -> bool:
    if value not in ("asc", "desc"):
        raise MalformedError("'order' must be asc or desc")
    return value == "desc"
