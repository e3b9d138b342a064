"""The architecture, enforced: no import cycles, and each layer loads only what it may.

The static half reads every module's imports (including ones inside functions and
under TYPE_CHECKING, so a cycle cannot hide in a deferred import) and fails on any
cycle. The run-time half imports a boundary module in a fresh interpreter and
lists the heavy packages it pulled in (Harlequin's import-hygiene pattern).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "tui")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def local_imports(path: Path, known: set[str]) -> set[str]:
    """The project modules `path` names in any import statement."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from pkg import mod` names the module pkg.mod when there is one
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    known = set(files)
    graph = {}
    for name, path in files.items():
        # a package's own __init__ is imported implicitly by its children: not an edge
        graph[name] = {m for m in local_imports(path, known) if m != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_check_sees_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_the_engine_never_names_the_console() -> None:
    graph = import_graph()
    leaks = sorted(
        f"{mod} -> {dep}"
        for mod, deps in graph.items()
        if mod.startswith("engine")
        for dep in deps
        if dep.startswith("tui")
    )
    assert not leaks


def test_replication_knows_stores_only_by_the_protocol() -> None:
    """The replication loop takes an ObjectStore; the HTTP client is the engine's choice."""
    graph = import_graph()
    leaks = sorted(
        f"{mod} -> {dep}"
        for mod, deps in graph.items()
        if mod.startswith("engine.replication")
        for dep in deps
        if dep in ("engine.s3.client", "engine.s3.memory")
    )
    assert not leaks


# What the console may import from the engine: the service interface and the data it
# carries, the demo's control interface, and the alias record with its rules (the
# endpoint form builds one). Everything else (state, replication, s3, HTTP client,
# engine, the demo's machinery) stays out.
CONSOLE_MAY_IMPORT = (
    "engine.service",
    "engine.checks.explanation",  # the explain verdicts and their text (no I/O)
    "engine.printable",  # text from stores and clients, escaped for the terminal
    "engine.demo.control",
    "engine.aliases",
    "engine.telemetry.snapshot",
    "engine.model",
    "engine.policy",
    "engine.errors",
    "engine.config",
)
CONSOLE_COMMAND = "tui.command"  # the one module that wires a service to the app


def test_the_console_uses_only_the_service_interface() -> None:
    graph = import_graph()
    leaks = sorted(
        f"{mod} -> {dep}"
        for mod, deps in graph.items()
        if mod.startswith("tui") and mod != CONSOLE_COMMAND
        for dep in deps
        if dep.startswith("engine") and dep not in CONSOLE_MAY_IMPORT
    )
    assert not leaks


def loaded_by(statement: str, forbidden: tuple[str, ...]) -> list[str]:
    code = (
        f"{statement}\nimport sys\nprint(','.join(m for m in {forbidden!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    return [m for m in out.stdout.strip().split(",") if m]


@pytest.mark.parametrize(
    ("statement", "forbidden"),
    [
        ("import engine", ("textual", "aiosqlite", "minio", "aiohttp", "starlette")),
        ("import engine.service", ("textual", "aiosqlite", "minio", "aiohttp", "starlette")),
        ("import engine.telemetry.snapshot", ("textual", "aiosqlite", "minio", "aiohttp")),
        ("import engine.checks.explanation", ("textual", "aiosqlite", "minio", "aiohttp")),
        ("import engine.s3", ("aiohttp", "minio", "httptools")),
        ("import engine.s3.memory", ("aiohttp", "minio", "httptools")),
        ("import engine.engine", ("textual", "starlette", "uvicorn")),
        ("import engine.cli.main", ("textual",)),
        ("import engine.demo.faults, engine.demo.workload, engine.demo.events", ("textual",)),
        ("import tui.app", ("aiosqlite", "minio", "aiohttp")),
    ],
)
def test_import_hygiene(statement: str, forbidden: tuple[str, ...]) -> None:
    assert loaded_by(statement, forbidden) == [], f"{statement!r} loads them"
