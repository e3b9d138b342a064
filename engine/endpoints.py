"""The stores the engine talks to: one S3 client and one health link per alias in use.

Clients are made on first use and kept across reloads (their connection pools are
the copy path's warm state); a link, once made, lives as long as the engine, so its
downtime adds up across client swaps. aliases.json is re-read only when its mtime
moves: a reload every second must not parse it every second.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from engine.aliases import Alias, AliasBook
from engine.errors import StateFileError
from engine.replication.health import Link
from engine.s3.client import S3Client


class Endpoints:
    def __init__(
        self,
        path: Path,
        max_connections: int,
        probe_interval: float,
        spawn: Callable[[Awaitable[None], bool], asyncio.Task[None]],
    ) -> None:
        self.path = path
        self.aliases: dict[str, Alias] = {}
        self.clients: dict[str, S3Client] = {}
        self.links: dict[str, Link] = {}
        self.downtime: dict[str, float] = {}  # each link's downtime before this run
        self._max_connections = max_connections
        self._probe_interval = probe_interval
        self._spawn = spawn
        self._mtime = -1.0

    def load(self) -> list[str]:
        """Apply aliases.json if it changed; returns the aliases in use that changed.

        Their clients are replaced (or dropped, if the alias is gone) here; whatever
        was built on the old client (routes, scans) is the caller's to rebuild."""
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            mtime = 0.0
        except OSError as exc:
            raise StateFileError(f"{self.path}: cannot be read ({exc.strerror})") from None
        if mtime == self._mtime:
            return []
        fresh = AliasBook(self.path).all()
        changed = [
            n for n, old in self.aliases.items() if fresh.get(n) != old and n in self.clients
        ]
        for name in changed:
            self._spawn(self.clients.pop(name).close(), False)
            if name in fresh:
                self.clients[name] = self._client_for(fresh[name])
                self.links[name].client = self.clients[name]
        self.aliases, self._mtime = fresh, mtime
        return changed

    def client(self, name: str) -> S3Client:
        """The alias's client, made (with its link, probing from now on) on first use."""
        if name not in self.clients:
            self.clients[name] = self._client_for(self.aliases[name])
            if name in self.links:
                self.links[name].client = self.clients[name]
            else:
                self.links[name] = link = Link(name, self.clients[name], self._probe_interval)
                link.downtime_total = self.downtime.get(name, 0.0)
                self._spawn(link.run(), True)
        return self.clients[name]

    def _client_for(self, alias: Alias) -> S3Client:
        return S3Client.for_alias(alias, max_connections=self._max_connections)

    async def close(self) -> None:
        for client in self.clients.values():
            await client.close()
