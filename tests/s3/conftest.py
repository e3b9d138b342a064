"""Every async test here runs on both event loops: `mirrorline run` uses uvloop when it
is installed and the stock loop otherwise, and their transports differ in the corners
a connection pool lives in (uvloop refuses a write to a closing transport, for one)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import pytest
import uvloop


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
