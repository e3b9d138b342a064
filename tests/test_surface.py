"""The engine's public surface is pinned (httpx's test_exported_members): a name added or
lost is a decision, and every listed name resolves."""

from __future__ import annotations

import engine


def test_all_public_names_are_listed_once() -> None:
    eager = [
        name
        for name, value in vars(engine).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("engine.")
    ]
    assert set(eager) <= set(engine.__all__)
    assert len(set(engine.__all__)) == len(engine.__all__)  # ruff (RUF022) keeps the order


def test_every_listed_name_resolves() -> None:
    for name in engine.__all__:
        assert getattr(engine, name) is not None, name
