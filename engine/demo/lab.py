"""A lab of real parts: two SeaweedFS stores, a fault proxy before the target, two policies.

The demo, the fault tests, the benchmarks and the screenshots all stand on this one
set-up, so what a newcomer sees is what the tests prove. Everything lives under one
directory (the demo's state dir): the engine's state, and each store's data in
`stores/`. A second start reuses the data (new ports and credentials each time,
written into the aliases); `clean` wipes it first.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from engine.aliases import Alias, AliasBook
from engine.demo.faults import FaultProxy
from engine.demo.seaweed import SeaweedServer, weed_binary
from engine.s3.control import ControlClient
from engine.service import PolicySpec
from engine.service.local import LocalService

SOURCE, TARGET = "demo-src", "demo-dst"


@dataclass(frozen=True)
class Route:
    """One demo policy: a source bucket, its copy, and the prefix it is limited to."""

    id: str
    bucket: str
    copy: str
    prefix: str = ""


ROUTES = (Route("photos", "photos", "photos-copy"), Route("logs", "logs", "logs-copy", "app/"))


@dataclass
class Lab:
    root: Path
    source: SeaweedServer
    target: SeaweedServer
    proxy: FaultProxy

    @property
    def aliases(self) -> AliasBook:
        return AliasBook(self.root / "aliases.json")

    @property
    def source_alias(self) -> Alias:
        return self.aliases.get(SOURCE)

    @property
    def target_alias(self) -> Alias:
        """The target as the workload's checks reach it: directly, not through the proxy."""
        return Alias(TARGET, self.target.endpoint, self.target.access_key, self.target.secret_key)

    @classmethod
    async def start(cls, root: Path, clean: bool = False) -> Lab:
        """Both stores up, the proxy before the target, buckets, aliases and policies.

        The stores are spawned from the calling thread (their parent-death signal
        follows it), so call this from the thread that lives as long as the lab.
        """
        weed_binary()  # a missing binary is one line, before anything starts
        stores = root / "stores"
        if clean and stores.exists():
            shutil.rmtree(stores)
        source = SeaweedServer(stores / "source", "demo-src-key", secrets.token_urlsafe(18))
        target = SeaweedServer(stores / "target", "demo-dst-key", secrets.token_urlsafe(18))
        source.spawn()
        target.spawn()
        lab = cls(root, source, target, FaultProxy("127.0.0.1", target.port))
        try:
            await asyncio.gather(
                asyncio.to_thread(source.wait_ready, 60.0),
                asyncio.to_thread(target.wait_ready, 60.0),
            )
            port = await lab.proxy.start()
            await lab._configure(f"http://127.0.0.1:{port}")
        except BaseException:
            await lab.stop()
            raise
        return lab

    async def _configure(self, target_url: str) -> None:
        book = self.aliases
        book.set(
            Alias(SOURCE, self.source.endpoint, self.source.access_key, self.source.secret_key)
        )
        book.set(Alias(TARGET, target_url, self.target.access_key, self.target.secret_key))
        for route in ROUTES:
            await ControlClient(self.source_alias).make_bucket(route.bucket)
            await ControlClient(self.target_alias).make_bucket(route.copy)
        service = await LocalService.open(self.root, actor="demo")
        try:
            known = {p.id for p in await service.policies()}
            for route in ROUTES:
                if route.id not in known:
                    await service.add_policy(
                        PolicySpec(
                            source=f"{SOURCE}/{route.bucket}",
                            target=f"{TARGET}/{route.copy}",
                            id=route.id,
                            prefix=route.prefix,
                        )
                    )
        finally:
            await service.close()

    async def stop(self) -> None:
        """Proxy and both stores down; safe to call twice."""
        await self.proxy.stop()
        await asyncio.gather(
            asyncio.to_thread(self.source.stop), asyncio.to_thread(self.target.stop)
        )
