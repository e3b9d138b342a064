"""`mirrorline tui`: the console, with the engine embedded or attached to a remote one."""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from click.core import ParameterSource

from engine import config
from engine.cli.context import TOKEN_OPTION, Context, run_async
from engine.config import EngineConfig, read_token
from engine.demo.embedded import EmbeddedDemo
from engine.demo.headless import run_headless
from engine.demo.remote import RemoteDemo
from engine.errors import UserError
from engine.service.discover import running_engine
from engine.service.embedded import EmbeddedEngine
from engine.service.local import LocalService
from engine.service.remote import RemoteService

if TYPE_CHECKING:  # textual loads only when a console opens, not for every CLI command
    from tui.app import Console

T = TypeVar("T")
DEMO_REFRESH = 0.5  # the demo is local: a quicker screen costs nothing
DEMO_STARTING = (
    "starting the demo: two SeaweedFS stores, a fault proxy before the target, the engine "
    "and the workload (a few seconds)"
)


def log_to_file(path: Path) -> None:
    """Log lines on the terminal would tear the screen: they go to a file instead,
    readable by its owner only (it names endpoints, keys and errors)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    os.chmod(path, 0o600)  # a file left by an older version may be wider
    root = logging.getLogger()
    level = root.level
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(min(level, logging.INFO))


@click.command()
@click.option("--connect", metavar="URL", help="Attach to `mirrorline run --listen` at URL.")
@click.option("--token", **TOKEN_OPTION)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read the remote engine's API token from this file.",
)
@click.option(
    "--refresh",
    type=click.FloatRange(0.2, 60),
    default=1.0,
    show_default=True,
    help="Seconds between refreshes (raise it on slow links).",
)
@click.option("--read-only", is_flag=True, help="No actions: a display for shared screens.")
@click.option("--workers", type=click.IntRange(1, 1024), default=32, show_default=True)
@click.option("--scan-interval", type=click.FloatRange(0.2, 86400), default=5.0, show_default=True)
@click.pass_obj
def tui(
    ctx: Context,
    connect: str | None,
    token: str | None,
    token_file: Path | None,
    refresh: float,
    read_only: bool,
    workers: int,
    scan_interval: float,
) -> None:
    """The live console: queue, transfers, failures and lag, with keys to act."""
    from tui.app import Console

    if token_file is not None:  # a bad file is said before "no terminal": it is the mistake
        token = read_token(token_file)
    need_terminal("use `mirrorline replicate status` in scripts")
    found = None if connect else running_engine(ctx.state_dir)
    if connect:
        source = RemoteService(connect, token or "")
        app = Console(source, refresh=refresh, read_only=read_only, where=connect)
    elif found is not None and found.url:
        secret = token or _state_token(ctx.state_dir)
        kind = RemoteDemo if run_async(_serves_demo(found.url, secret)) else RemoteService
        source = kind(found.url, secret)
        where = f"attached to the engine at {found.url} (pid {found.pid})"
        app = Console(source, refresh=refresh, read_only=read_only, where=where)
    elif found is not None:
        stored = run_async(LocalService.open(ctx.state_dir, actor="console", queue=ctx.queue))
        where = (
            f"engine pid {found.pid} runs without --listen: read-only; "
            "restart it with `mirrorline run --listen 127.0.0.1:7480` for actions"
        )
        app = Console(stored, refresh=refresh, read_only=True, where=where)
    else:
        embedded = EmbeddedEngine(
            EngineConfig(
                state_dir=ctx.state_dir,
                workers=workers,
                scan_interval=scan_interval,
                queue=ctx.queue,
            )
        )
        app = Console(
            embedded,
            refresh=refresh,
            read_only=read_only,
            starting=embedded.start,
            where=f"engine on {ctx.state_dir}",
        )
    run_console(app, ctx.state_dir)


def need_terminal(instead: str) -> None:
    """Before anything starts or is wiped: a console with no terminal is one clear line."""
    if not os.isatty(1) and "web_driver" not in os.environ.get("TEXTUAL_DRIVER", ""):
        raise UserError(f"the console needs a terminal ({instead})")


def run_console(app: Console, state_dir: Path) -> None:
    """Run the app in this terminal; an embedded engine is drained whatever happens."""
    log_to_file(config.ensure(state_dir) / "console.log")
    previous = signal.signal(signal.SIGTERM, lambda *_: _quit_soon(app))
    try:
        app.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
        if isinstance(app.source, EmbeddedEngine):  # crashed or killed: still drain it
            run_async(app.source.close())
    if app.return_code:
        raise SystemExit(app.return_code)


def _quit_soon(app: Console) -> None:
    """SIGTERM quits as `q` does (an embedded engine drains, a demo's stores stop).

    The handler runs on the app's thread, inside its loop's wait: the thread-safe
    call is the one that wakes that wait."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # the app's loop is not up yet, or gone: stop the plain way
        raise SystemExit(128 + signal.SIGTERM) from None
    loop.call_soon_threadsafe(app.call_later, app.action_quit)


async def _serves_demo(url: str, token: str) -> bool:
    """Asked on a client of its own: an HTTP client belongs to the loop it first ran on."""
    probe = RemoteDemo(url, token)
    try:
        return await probe.is_demo()
    finally:
        await probe.close()


def _state_token(state_dir: Path) -> str:
    """The token a local engine wrote; readable only by the user it runs as."""
    try:
        return read_token(state_dir / "api-token")
    except UserError as exc:
        raise UserError(
            f"an engine runs on {state_dir} but {exc.reason}: "
            "set $MIRRORLINE_TOKEN or pass --token-file"
        ) from None


def demo_root(ctx: Context) -> Path:
    """The demo's own state dir: `--state-dir` if given, else one beside the real one."""
    explicit = click.get_current_context().find_root().params.get("state_dir")
    return Path(explicit) if explicit else ctx.state_dir.with_name(ctx.state_dir.name + "-demo")


@click.command()
@click.option("--headless", is_flag=True, help="No console: progress lines, a summary, a verify.")
@click.option(
    "--duration",
    type=click.FloatRange(5, 86400),
    default=60.0,
    show_default=True,
    help="Seconds of traffic (with --headless).",
)
@click.option(
    "--faults", is_flag=True, help="Script link faults: cut, heal, latency, resets, heal."
)
@click.option(
    "--rate",
    type=click.FloatRange(0, 500),
    default=20.0,
    show_default=True,
    help="Operations per second on the source (+/- change it in the console).",
)
@click.option("--events", is_flag=True, help="Post each write to the engine's webhook (key E).")
@click.option("--seed", type=click.IntRange(0, 2**31), default=1, show_default=True)
@click.option("--clean", is_flag=True, help="Wipe the demo's stores and state first.")
@click.option(
    "--web",
    "web_port",
    type=click.IntRange(1, 65535),
    is_flag=False,
    flag_value=8000,
    default=None,
    help="Serve the console in a browser on 127.0.0.1:PORT (default 8000), for a room.",
)
@click.pass_obj
def demo(
    ctx: Context,
    headless: bool,
    duration: float,
    faults: bool,
    rate: float,
    events: bool,
    seed: int,
    clean: bool,
    web_port: int | None,
) -> None:
    """Replication between two real local stores, live, with faults you can inject.

    Starts two SeaweedFS servers on free loopback ports (data under the demo's own
    state dir, separate from your real one), a TCP proxy in front of the target
    that the fault keys control, aliases demo-src and demo-dst, two policies (one
    whole bucket, one limited to a prefix), a seeded workload (small and multipart
    objects, overwrites, deletes, tags, unicode keys) and the engine, then opens
    the console. A bar under its header shows the fault on the link and since
    when, the write rate, and whether events are on.

    \b
    Keys in the console (capitals: c, l, x and e keep their console meaning):
      C  cut the link to the target     H  heal: every fault off
      L  add latency on the link        +  double the write rate
      B  cap the link's bandwidth       -  halve it
      X  reset connections mid-body     E  post each write as a MinIO webhook
                                           event (lag: scan interval -> sub-second)
      a  add a policy   A  add an endpoint   ?  every key   q  quit

    `q`, Ctrl-C or SIGTERM stop the stores with the demo; the data is kept for
    inspection unless --clean. --headless runs without the console, for
    --duration seconds (with --faults, a scripted cut, latency and resets), and
    ends with a verify of the target.
    """
    if ctx.queue:
        raise UserError(
            "the demo runs on its own throwaway state dir, not on a shared queue "
            "(--queue/$MIRRORLINE_QUEUE is for run, tui and replicate)"
        )
    root = demo_root(ctx)
    if not headless:
        scripted = [
            f"--{name}"
            for name in ("duration", "faults")
            if click.get_current_context().get_parameter_source(name) is ParameterSource.COMMANDLINE
        ]
        if scripted:
            raise UserError(
                f"{' and '.join(scripted)} go with --headless: in the console, the keys inject "
                "faults (C, L, B, X; H heals) and q ends the demo"
            )
        if web_port is None:
            need_terminal("use `mirrorline demo --headless` in scripts")
    if clean and (root / "mirrorline.db").exists():
        for name in ("mirrorline.db", "mirrorline.db-wal", "mirrorline.db-shm", "aliases.json"):
            (root / name).unlink(missing_ok=True)
    if headless:
        summary = _run_until_signal(
            run_headless(root, duration, rate, faults, events, clean, seed, say=_say)
        )
        for line in summary.lines():
            _say(line)
        if not summary.verified:
            raise SystemExit(1)
        return
    if web_port is not None:
        running = EmbeddedDemo(root, rate, seed, events, clean)
        run_async(running.start())
        try:
            serve_web(root, web_port, "mirrorline demo")
        finally:
            run_async(running.close())
        return
    from tui.app import Console

    embedded = EmbeddedDemo(root, rate, seed, events, clean)
    app = Console(
        embedded,
        refresh=DEMO_REFRESH,
        starting=embedded.start,
        starting_says=DEMO_STARTING,
        where=f"demo on {root}",
    )
    run_console(app, root)


def serve_web(state_dir: Path, port: int, title: str) -> None:
    """The console in a browser (textual-serve): each visitor gets `mirrorline tui` attached
    to the engine already running on `state_dir`. Loopback only: put a proxy in front."""
    try:
        from textual_serve.server import Server
    except ImportError:
        raise UserError(
            "the browser view needs textual-serve: pip install 'mirrorline[demo]'"
        ) from None
    command = [sys.executable, "-m", "engine.cli", "--state-dir", str(state_dir), "tui"]
    click.echo(f"the console in a browser: http://127.0.0.1:{port} (Ctrl-C stops)", err=True)
    Server(shlex.join(command), host="127.0.0.1", port=port, title=title).serve()


def _say(line: str) -> None:
    click.echo(line, err=False)


def _run_until_signal(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro`; SIGINT and SIGTERM cancel it, so its cleanup (stores down) still runs."""

    async def main() -> T:
        task = asyncio.ensure_future(coro)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            return await task
        except asyncio.CancelledError:
            raise UserError("interrupted: the demo's stores are stopped") from None

    return asyncio.run(main())
