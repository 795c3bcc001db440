"""Metadata of volumes and snapshots: read with their records, written in their
transactions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import and_, bindparam, delete, insert, select

from edgefed.store.engine import AsyncConnection
from edgefed.store.volume.tables import resource_metadata

_OF = (
    select(resource_metadata)
    .where(resource_metadata.c.resource_id.in_(bindparam("ids", expanding=True)))
    .order_by(resource_metadata.c.key)
)


async def metadata_of(conn: AsyncConnection, ids: Sequence[str]) -> dict[str, dict[str, str]]:
    """The metadata of each resource of ``ids`` that has some."""
    found: dict[str, dict[str, str]] = {}
    if ids:
        for row in await conn.execute(_OF, {"ids": list(ids)}):
            found.setdefault(row.resource_id, {})[row.key] = row.value
    return found


async def write_metadata(
    conn: AsyncConnection, resource_id: str, items: Mapping[str, str], *, replace: bool
) -> None:
    """Set ``items`` on the resource: instead of all its metadata (``replace``), or
    over the keys they name."""
    where = resource_metadata.c.resource_id == resource_id
    if not replace:
        where = and_(where, resource_metadata.c.key.in_(list(items)))
    await conn.execute(delete(resource_metadata).where(where))
    if items:
        await conn.execute(
            insert(resource_metadata),
            [{"resource_id": resource_id, "key": k, "value": v} for k, v in items.items()],
        )


async def delete_key(conn: AsyncConnection, resource_id: str, key: str) -> bool:
    result = await conn.execute(
        delete(resource_metadata).where(
            resource_metadata.c.resource_id == resource_id, resource_metadata.c.key == key
        )
    )
    return bool(result.rowcount)


async def delete_all(conn: AsyncConnection, resource_id: str) -> None:
    await conn.execute(
        delete(resource_metadata).where(resource_metadata.c.resource_id == resource_id)
    )
