"""Named leases: work one node does for the whole cluster (a policy's change scan).

A lease is a row: taken when free or expired, renewed by its holder, judged
by the database's clock. One statement decides, so two nodes asking at once
cannot both be told yes.
"""

from __future__ import annotations

from engine.state.postgres.database import Database
from engine.state.postgres.schema import NOW
from engine.state.stores import LeaseStore


class PostgresLeases(LeaseStore):
    def __init__(self, db: Database, node: str, lease: float) -> None:
        self._db = db
        self._node = node
        self.seconds = lease

    async def hold(self, name: str) -> bool:
        holder = await self._db.value(
            f"INSERT INTO leases (name, node, until) VALUES ($1, $2, {NOW} + $3) "
            "ON CONFLICT (name) DO UPDATE SET node = excluded.node, until = excluded.until "
            f"WHERE leases.node = excluded.node OR leases.until < {NOW} RETURNING node",
            name,
            self._node,
            self.seconds,
        )
        return holder == self._node

    async def drop(self, name: str) -> None:
        await self._db.execute("DELETE FROM leases WHERE name = $1 AND node = $2", name, self._node)
