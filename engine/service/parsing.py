"""Reading a request: its JSON body, typed fields and query numbers.

Each mistake is a MalformedError (HTTP 400): the request cannot be read, as
opposed to read and refused (a UserError, 422).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from engine.errors import MalformedError


async def body_of(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
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
