"""Snapshots of volumes: taken only from a volume in a status that allows it, checked
in the same transaction as the quotas and the insert."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Row

from edgefed.store.engine import AsyncConnection
from edgefed.store.records import RecordMapper, RecordRepository, column_values
from edgefed.store.volume.listing import Page, page_of
from edgefed.store.volume.metadata import delete_all, metadata_of, write_metadata
from edgefed.store.volume.quotas import Demand, check, serialise
from edgefed.store.volume.tables import NewSnapshot, SnapshotRecord, snapshots, volumes
from edgefed.store.volume.volumes import StateConflict


class Snapshots(RecordRepository[SnapshotRecord, NewSnapshot]):
    table = snapshots
    mapper = RecordMapper(SnapshotRecord)

    async def _build(self, conn: AsyncConnection, rows: Sequence[Row[Any]]) -> list[SnapshotRecord]:
        meta = await metadata_of(conn, [row.id for row in rows])
        return [self.mapper.one(row, metadata=meta.get(row.id, {})) for row in rows]

    async def _records(
        self, conn: AsyncConnection, query: Any, params: Mapping[str, Any] | None = None
    ) -> list[SnapshotRecord]:
        return await self._build(conn, list(await conn.execute(query, dict(params or {}))))

    async def page(self, page: Page) -> list[SnapshotRecord]:
        async with self.store.read() as conn:
            rows = list(await page_of(conn, snapshots, select(snapshots), page))
            return await self._build(conn, rows)

    async def add(
        self,
        *,
        new: NewSnapshot,
        volume_statuses: Collection[str],
        demand: Demand,
        limits: Mapping[str, int],
    ) -> SnapshotRecord:
        """The new snapshot; StateConflict when its volume is not in one of
        ``volume_statuses``, OverLimit when it does not fit the quotas."""
        values = self.stamped(column_values(new))
        meta = values.pop("metadata")
        async with self.store.write() as conn:
            await serialise(self.store, conn)
            row = (
                await conn.execute(
                    select(volumes.c.status).where(volumes.c.id == new.volume_id).with_for_update()
                )
            ).first()
            if row is None or row.status not in volume_statuses:
                raise StateConflict(row.status if row is not None else None)
            await check(conn, new.project_id, demand, limits)
            await conn.execute(insert(snapshots).values(**values))
            await write_metadata(conn, values["id"], meta, replace=True)
        made = await self.get(id=values["id"])
        assert made is not None
        return made

    async def set_metadata(self, id: str, items: Mapping[str, str], *, replace: bool) -> None:
        async with self.store.write() as conn:
            await write_metadata(conn, id, items, replace=replace)
            await conn.execute(
                update(snapshots).where(snapshots.c.id == id).values(updated_at=self.now())
            )

    async def remove(self, id: str, *, statuses: Collection[str]) -> None:
        """Delete the snapshot if its status is one of ``statuses``; StateConflict
        otherwise."""
        async with self.store.write() as conn:
            row = (
                await conn.execute(select(snapshots.c.status).where(snapshots.c.id == id))
            ).first()
            if row is None or row.status not in statuses:
                raise StateConflict(row.status if row is not None else None)
            await delete_all(conn, id)
            await conn.execute(delete(snapshots).where(snapshots.c.id == id))
