"""Volumes: read with their metadata and attachments; created within the quotas; their
status changed only from the statuses a change expects (Cinder's conditional update),
in one statement, so that two requests racing on a volume cannot both win."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Row

from edgefed.store.engine import AsyncConnection
from edgefed.store.records import RecordMapper, RecordRepository, column_values
from edgefed.store.volume.listing import Page, page_of
from edgefed.store.volume.metadata import delete_all, metadata_of, write_metadata
from edgefed.store.volume.quotas import Demand, check, serialise
from edgefed.store.volume.tables import (
    AttachmentRecord,
    NewVolume,
    VolumeRecord,
    attachments,
    snapshots,
    volume_types,
    volumes,
)

_ATTACHMENTS_OF = (
    select(attachments)
    .where(attachments.c.volume_id.in_(bindparam("ids", expanding=True)))
    .order_by(attachments.c.created_at, attachments.c.id)
)
ATTACHMENT_MAPPER = RecordMapper(AttachmentRecord)


class StateConflict(Exception):
    """The record is not in a state the change expects; ``status`` is the one it has
    (None: the record is gone)."""

    def __init__(self, status: str | None, *, reason: str = ""):
        super().__init__(reason or f"status {status}")
        self.status = status
        self.reason = reason


async def attachments_of(
    conn: AsyncConnection, ids: Sequence[str]
) -> dict[str, tuple[AttachmentRecord, ...]]:
    found: dict[str, list[AttachmentRecord]] = {}
    if ids:
        for row in await conn.execute(_ATTACHMENTS_OF, {"ids": list(ids)}):
            found.setdefault(row.volume_id, []).append(ATTACHMENT_MAPPER.one(row))
    return {k: tuple(v) for k, v in found.items()}


class Volumes(RecordRepository[VolumeRecord, NewVolume]):
    table = volumes
    mapper = RecordMapper(VolumeRecord)

    async def _build(self, conn: AsyncConnection, rows: Sequence[Row[Any]]) -> list[VolumeRecord]:
        ids = [row.id for row in rows]
        meta = await metadata_of(conn, ids)
        attached = await attachments_of(conn, ids)
        type_ids = list({row.volume_type_id for row in rows})
        names: dict[str, str] = {}
        if type_ids:
            query = select(volume_types.c.id, volume_types.c.name)
            for found in await conn.execute(query.where(volume_types.c.id.in_(type_ids))):
                names[found.id] = found.name
        return [
            self.mapper.one(
                row,
                metadata=meta.get(row.id, {}),
                attachments=attached.get(row.id, ()),
                volume_type_name=names.get(row.volume_type_id, ""),
            )
            for row in rows
        ]

    async def _records(
        self, conn: AsyncConnection, query: Any, params: Mapping[str, Any] | None = None
    ) -> list[VolumeRecord]:
        return await self._build(conn, list(await conn.execute(query, dict(params or {}))))

    async def page(self, page: Page) -> list[VolumeRecord]:
        """The volumes of a list (MarkerNotFound: the marker is not one of them)."""
        async with self.store.read() as conn:
            return await self._build(
                conn, list(await page_of(conn, volumes, select(volumes), page))
            )

    async def add(
        self, *, new: NewVolume, demand: Demand, limits: Mapping[str, int]
    ) -> VolumeRecord:
        """The new volume, with its metadata; OverLimit when it does not fit the quotas."""
        values = self.stamped(column_values(new))
        meta = values.pop("metadata")
        async with self.store.write() as conn:
            await serialise(self.store, conn)
            await check(conn, new.project_id, demand, limits)
            await conn.execute(insert(volumes).values(**values))
            await write_metadata(conn, values["id"], meta, replace=True)
        made = await self.get(id=values["id"])
        assert made is not None
        return made

    async def transition(
        self,
        id: str,
        *,
        expect: Mapping[str, Collection[object]],
        values: Mapping[str, Any],
        demand: Demand | None = None,
        limits: Mapping[str, int] | None = None,
    ) -> VolumeRecord:
        """Set ``values`` if the volume's columns have one of the values ``expect`` says
        (``{"status": ("available",)}``); StateConflict otherwise. With ``demand``, the
        quotas are checked in the same transaction (an extend)."""
        async with self.store.write() as conn:
            if demand is not None:
                await serialise(self.store, conn)
                row = (await conn.execute(select(volumes).where(volumes.c.id == id))).first()
                await check(conn, row.project_id if row else "", demand, limits or {})
            where = [volumes.c.id == id]
            where += [volumes.c[name].in_(list(allowed)) for name, allowed in expect.items()]
            result = await conn.execute(
                update(volumes).where(*where).values(**values, updated_at=self.now())
            )
            if result.rowcount == 0:
                row = (
                    await conn.execute(select(volumes.c.status).where(volumes.c.id == id))
                ).first()
                raise StateConflict(row.status if row is not None else None)
        found = await self.get(id=id)
        assert found is not None
        return found

    async def allocated_gb(self) -> tuple[int, int]:
        """(GB the site's volumes are sized to, how many volumes), all projects."""
        query = select(func.coalesce(func.sum(volumes.c.size), 0), func.count(volumes.c.id))
        async with self.store.read() as conn:
            row = (await conn.execute(query)).one()
        return int(row[0]), int(row[1])

    async def set_metadata(self, id: str, items: Mapping[str, str], *, replace: bool) -> None:
        async with self.store.write() as conn:
            await write_metadata(conn, id, items, replace=replace)
            await conn.execute(
                update(volumes).where(volumes.c.id == id).values(updated_at=self.now())
            )

    async def remove(
        self,
        id: str,
        *,
        statuses: Collection[str],
        cascade: bool,
        snapshot_statuses: Collection[str],
    ) -> list[str]:
        """Delete the volume (and with ``cascade`` its snapshots) if its status is one of
        ``statuses``, it is not attached, and it has no snapshots (``cascade``: none in
        another status than ``snapshot_statuses``); StateConflict otherwise. The ids of
        the snapshots deleted with it."""
        async with self.store.write() as conn:
            locked = select(volumes).where(volumes.c.id == id).with_for_update()
            row = (await conn.execute(locked)).first()
            if row is None:
                raise StateConflict(None)
            snaps = list(
                await conn.execute(
                    select(snapshots.c.id, snapshots.c.status).where(snapshots.c.volume_id == id)
                )
            )
            has_attachments = (
                await conn.execute(select(attachments.c.id).where(attachments.c.volume_id == id))
            ).first() is not None
            busy = row.status not in statuses or row.attach_status == "attached" or has_attachments
            if busy or (snaps and not cascade):
                raise StateConflict(row.status)
            if any(s.status not in snapshot_statuses for s in snaps):
                raise StateConflict(row.status, reason="snapshots")
            for snap in snaps:
                await delete_all(conn, snap.id)
            await conn.execute(delete(snapshots).where(snapshots.c.volume_id == id))
            await delete_all(conn, id)
            await conn.execute(delete(volumes).where(volumes.c.id == id))
        return [s.id for s in snaps]
