"""A running engine and a configuration that goes bad: it keeps the last good one, says so
once (log, `replicate status`, the API's snapshot), and replicates on; a loop of the engine
that dies stops the process with an error, so a supervisor restarts it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import urllib.request
from pathlib import Path

import pytest

from engine.config import EngineConfig
from engine.engine import Engine, EngineFailure
from tests.conftest import Pair, eventually, until


def config_error(pair: Pair) -> str:
    return json.loads(pair.ml("replicate", "status", "--json").stdout)["config_error"]


def api(state_dir: Path) -> tuple[str, str]:
    """The running engine's API address and token, as it left them in the state dir."""
    url = json.loads((state_dir / "engine.json").read_text())["url"]
    return url, (state_dir / "api-token").read_text().strip()


def api_config_error(state_dir: Path) -> str:
    url, token = api(state_dir)
    headers = {"Authorization": f"Bearer {token}"}
    request = urllib.request.Request(f"{url}/v1/status", headers=headers)
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.loads(resp.read())["engine"]["config_error"]


def test_a_bad_aliases_file_keeps_the_last_good_aliases_and_replication_goes_on(
    pair: Pair,
) -> None:
    pair.add_policy()
    engine = pair.start_engine("--listen", "127.0.0.1:0")
    pair.put("before.txt", b"one")
    eventually(lambda: "before.txt" in pair.target_latest())

    aliases = pair.state_dir / "aliases.json"
    good = aliases.read_bytes()
    aliases.write_text('{"version": 1, "aliases": []}')  # killed the engine, with status 0
    bad = hashlib.sha256(aliases.read_bytes()).hexdigest()
    # The CLI on the state dir refuses the file itself; through the API it sees the engine.
    problem = eventually(lambda: api_config_error(pair.state_dir))
    assert '"aliases" must be an object' in problem, problem
    url, token = api(pair.state_dir)
    text = pair.ml("replicate", "status", "--connect", url, "--token", token).stdout
    assert "configuration error (the last good one is in use)" in text, text

    pair.put("during.txt", b"two")  # still replicating, with the aliases it had
    eventually(lambda: "during.txt" in pair.target_latest())
    assert engine.poll() is None
    assert hashlib.sha256(aliases.read_bytes()).hexdigest() == bad  # never rewritten

    aliases.write_bytes(good)
    eventually(lambda: api_config_error(pair.state_dir) == "")
    assert pair.stop_engine(engine) == 0
    log = pair.engine_log()
    assert log.count('"aliases" must be an object') == 1, log  # once, not every second
    assert log.count("configuration: fixed") == 1, log


def test_a_policy_naming_an_alias_nobody_set_is_shown_not_silently_idle(pair: Pair) -> None:
    pair.add_policy()
    engine = pair.start_engine()
    # Running, not just started: its first scan is done. Before that, `run` itself reads
    # aliases.json, and this test's write (truncate, then write) could be read half-done.
    eventually(lambda: pair.status()["scans"] >= 1)
    book = json.loads((pair.state_dir / "aliases.json").read_text())
    del book["aliases"]["dst"]  # removed by hand, under the policy that uses it
    (pair.state_dir / "aliases.json").write_text(json.dumps(book))
    problem = eventually(lambda: config_error(pair))
    assert "policy p1 names alias 'dst', which is not set" in problem
    assert engine.poll() is None  # its scans stopped with the alias; the engine did not
    assert pair.stop_engine(engine) == 0


async def test_a_loop_that_dies_stops_the_engine_with_its_reason(pair: Pair) -> None:
    """Before: the death was logged and the engine ran on without the loop (a frozen
    snapshot, a queue nobody drained), or, for the reload loop, exited with status 0."""
    pair.add_policy()
    engine = Engine(EngineConfig(state_dir=pair.state_dir, workers=2, scan_interval=0.5))
    running = asyncio.create_task(engine.run())
    await until(engine.ready.is_set)

    async def broken() -> None:
        raise RuntimeError("disk on fire")

    engine.spawn(broken())
    with pytest.raises(EngineFailure, match="broken failed: RuntimeError: disk on fire"):
        await asyncio.wait_for(running, 60)
