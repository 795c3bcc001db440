"""Volume quotas: the limits set per project (the service knows the defaults), what a
project uses, and the check a create makes in its own write transaction.

Cinder counts ``volumes``, ``gigabytes`` (volumes and snapshots) and ``snapshots``,
each also per volume type (``volumes_<type>``…). A create that would go past a limit
raises ``OverLimit`` before anything is written; PostgreSQL's racing creates take turns
on an advisory lock, so two that each fit alone do not both pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import and_, delete, func, insert, select

from edgefed.store.engine import AsyncConnection, Store
from edgefed.store.volume.tables import snapshots, volume_quotas, volume_types, volumes

# Arbitrary constant key: creates counted against the volume quotas take turns.
QUOTA_LOCK = 0x65646766_0201


class OverLimit(Exception):
    """A create would take ``resource`` past its limit."""

    def __init__(self, *, resource: str, requested: int, limit: int, used: int):
        super().__init__(f"{resource}: {used} + {requested} > {limit}")
        self.resource = resource
        self.requested = requested
        self.limit = limit
        self.used = used


@dataclass(frozen=True, slots=True)
class Demand:
    """What a create adds to its project's usage: ``kind`` is ``volumes`` or
    ``snapshots`` (or empty: an extend adds gigabytes only), ``gigabytes`` its size, of
    the type named ``type_name``."""

    kind: str
    gigabytes: int
    type_name: str


async def serialise(store: Store, conn: AsyncConnection) -> None:
    if not store.is_sqlite:
        await conn.execute(select(func.pg_advisory_xact_lock(QUOTA_LOCK)))


async def usage(conn: AsyncConnection, project_id: str) -> dict[str, int]:
    """What the project uses: volumes, snapshots and gigabytes, in all and per type."""
    used: dict[str, int] = {"volumes": 0, "snapshots": 0, "gigabytes": 0}
    for kind, table in (("volumes", volumes), ("snapshots", snapshots)):
        rows = await conn.execute(
            select(volume_types.c.name, func.count(), func.coalesce(func.sum(table.c.size), 0))
            .select_from(table.join(volume_types, volume_types.c.id == table.c.volume_type_id))
            .where(table.c.project_id == project_id)
            .group_by(volume_types.c.name)
        )
        for type_name, count, size in rows:
            used[kind] += int(count)
            used["gigabytes"] += int(size)
            used[f"{kind}_{type_name}"] = used.get(f"{kind}_{type_name}", 0) + int(count)
            key = f"gigabytes_{type_name}"
            used[key] = used.get(key, 0) + int(size)
    return used


async def check(
    conn: AsyncConnection, project_id: str, demand: Demand, limits: Mapping[str, int]
) -> None:
    """OverLimit when ``demand`` does not fit the project's ``limits`` (-1: none)."""
    used = await usage(conn, project_id)
    wanted = [
        ("gigabytes", demand.gigabytes),
        (f"gigabytes_{demand.type_name}", demand.gigabytes),
    ]
    if demand.kind:
        wanted[:0] = [(demand.kind, 1), (f"{demand.kind}_{demand.type_name}", 1)]
    for resource, requested in wanted:
        limit = limits.get(resource, -1)
        if limit >= 0 and used.get(resource, 0) + requested > limit:
            raise OverLimit(
                resource=resource, requested=requested, limit=limit, used=used.get(resource, 0)
            )


class VolumeQuotas:
    """A project's limits (only those set) and usage."""

    def __init__(self, store: Store):
        self.store = store

    async def limits(self, project_id: str) -> dict[str, int]:
        async with self.store.read() as conn:
            rows = await conn.execute(
                select(volume_quotas).where(volume_quotas.c.project_id == project_id)
            )
            return {row.resource: int(row.hard_limit) for row in rows}

    async def set_limits(self, project_id: str, limits: Mapping[str, int]) -> None:
        async with self.store.write() as conn:
            await conn.execute(
                delete(volume_quotas).where(
                    and_(
                        volume_quotas.c.project_id == project_id,
                        volume_quotas.c.resource.in_(list(limits)),
                    )
                )
            )
            if limits:
                await conn.execute(
                    insert(volume_quotas),
                    [
                        {"project_id": project_id, "resource": k, "hard_limit": v}
                        for k, v in limits.items()
                    ],
                )

    async def reset(self, project_id: str) -> None:
        async with self.store.write() as conn:
            await conn.execute(
                delete(volume_quotas).where(volume_quotas.c.project_id == project_id)
            )

    async def usage(self, project_id: str) -> dict[str, int]:
        async with self.store.read() as conn:
            return await usage(conn, project_id)
