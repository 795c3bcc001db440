"""``QuotaRepository``: hard limits per project and per quota class.

A missing row means "the default" (the class, then the settings: services/compute/
quotas.py decides); usage is not stored but counted from the live servers.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import and_, delete, insert, select, update

from edgefed.store.compute.records import locked
from edgefed.store.compute.tables import quotas
from edgefed.store.engine import Store


class QuotaRepository:
    """Hard limits per project and per quota class; a missing row means "the default"."""

    def __init__(self, store: Store):
        self.store = store

    async def limits(self, *, kind: str, owner: str) -> dict[str, int]:
        async with self.store.read() as conn:
            rows = await conn.execute(
                select(quotas.c.resource, quotas.c.hard_limit).where(
                    and_(quotas.c.kind == kind, quotas.c.owner == owner)
                )
            )
            return {r.resource: int(r.hard_limit) for r in rows}

    async def set_limits(self, *, kind: str, owner: str, limits: Mapping[str, int]) -> None:
        async with self.store.write() as conn:
            for resource, limit in limits.items():
                key = and_(
                    quotas.c.kind == kind, quotas.c.owner == owner, quotas.c.resource == resource
                )
                row = (await conn.execute(select(quotas.c.origin).where(key))).first()
                if row is not None and row.origin:
                    raise locked("Quota", f"{resource} of {owner}", row.origin)
                if row is None:
                    await conn.execute(
                        insert(quotas).values(
                            kind=kind, owner=owner, resource=resource, hard_limit=limit
                        )
                    )
                else:
                    await conn.execute(update(quotas).where(key).values(hard_limit=limit))

    async def reset(self, *, kind: str, owner: str) -> None:
        async with self.store.write() as conn:
            key = and_(quotas.c.kind == kind, quotas.c.owner == owner)
            synced = (await conn.execute(select(quotas.c.origin).where(key))).all()
            origins = [r.origin for r in synced if r.origin]
            if origins:
                raise locked("Quota set", owner, origins[0])
            await conn.execute(delete(quotas).where(key))
