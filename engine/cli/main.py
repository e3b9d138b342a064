"""`mirrorline`: the root command group and the entry point.

Sub-commands are named explicitly here; commands that live outside the engine
(the console's `tui`, `demo`) arrive through the `mirrorline.commands` entry
point group, so the engine never imports the console. Each command's module is
imported only when that command runs (or help lists it): `run` starts copying
sooner without the minio SDK, httpx, the API server or the console loaded, and
a read-only command (`replicate status`) starts in a fraction of a second. Even
the entry points are read only when a name is not built in, or help lists them:
reading every installed package's metadata costs tens of milliseconds.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from engine import __version__, config
from engine.cli.context import Context, Group, add_queue_option

# name -> (module, attribute). `compare`, `explain`, `resync` and `status` add their commands to
# the `replicate` group, so loading `replicate` imports them too.
_BUILTIN = {
    "alias": ("engine.cli.alias", "alias"),
    "replicate": ("engine.cli.policies", "replicate"),
    "run": ("engine.cli.run", "run"),
}
_REPLICATE_PARTS = (
    "engine.cli.compare",
    "engine.cli.explain",
    "engine.cli.resync",
    "engine.cli.status",
)


class LazyGroup(Group):
    """A group whose commands are imported on first use."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, Callable[[], click.Command]] = {}
        self.plugins: Callable[[], dict[str, Callable[[], click.Command]]] | None = None

    def _discover(self) -> None:
        """Add the commands other packages offer, once; a built-in name keeps its command."""
        if self.plugins is not None:
            found, self.plugins = self.plugins(), None
            for name, load in found.items():
                self.lazy.setdefault(name, load)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._discover()
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name not in self.lazy:
            self._discover()
        if name not in self.commands and name in self.lazy:
            try:
                command = self.lazy.pop(name)()
                add_queue_option(command)  # every command takes --queue, wherever it lives
                self.add_command(command, name)
            except Exception as exc:  # noqa: BLE001 - one broken command must not take all down
                click.echo(f"mirrorline: warning: `{name}` is unavailable: {exc}", err=True)
                return None
        return self.commands.get(name)


def _plugins() -> dict[str, Callable[[], click.Command]]:
    from importlib.metadata import entry_points

    return {entry.name: entry.load for entry in entry_points(group="mirrorline.commands")}


def _builtin(name: str) -> Callable[[], click.Command]:
    def load() -> click.Command:
        module, attr = _BUILTIN[name]
        if name == "replicate":
            for part in _REPLICATE_PARTS:
                importlib.import_module(part)
        return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]

    return load


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="State directory (default: $MIRRORLINE_HOME or ~/.local/state/mirrorline).",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(__version__, prog_name="mirrorline")
@click.pass_context
def cli(ctx: click.Context, state_dir: Path | None, verbose: int) -> None:
    """Asynchronous bucket replication for S3-compatible object stores."""
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(
        level=max(level, logging.DEBUG),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    ctx.ensure_object(Context).state_dir = config.resolve(state_dir)


def main() -> None:
    assert isinstance(cli, LazyGroup)
    for name in _BUILTIN:
        cli.lazy[name] = _builtin(name)
    cli.plugins = _plugins
    add_queue_option(cli)
    cli(prog_name="mirrorline")
