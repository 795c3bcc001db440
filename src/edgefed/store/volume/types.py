"""Volume types and their extra specs; the default type made on first use."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, insert, or_, select
from sqlalchemy.exc import IntegrityError

from edgefed.store.records import RecordMapper, RecordRepository
from edgefed.store.volume.tables import (
    DEFAULT_TYPE_NAME,
    NewVolumeType,
    VolumeTypeRecord,
    snapshots,
    volume_types,
    volumes,
)


class TypeInUse(Exception):
    """Volumes (or snapshots) of the type exist."""


class VolumeTypes(RecordRepository[VolumeTypeRecord, NewVolumeType]):
    table = volume_types
    mapper = RecordMapper(VolumeTypeRecord)
    order = ("name", "id")

    async def ensure_default(self) -> VolumeTypeRecord:
        """The ``__DEFAULT__`` type, made now if the site has none yet."""
        found = await self.by_name(DEFAULT_TYPE_NAME)
        if found is not None:
            return found
        values = self.stamped(
            {
                "name": DEFAULT_TYPE_NAME,
                "description": "Default Volume Type",
                "is_public": True,
                "extra_specs": {},
            }
        )
        try:
            async with self.store.write() as conn:
                await conn.execute(insert(volume_types).values(**values))
        except IntegrityError:
            pass  # made by a request racing this one
        made = await self.by_name(DEFAULT_TYPE_NAME)
        assert made is not None
        return made

    async def by_name(self, name: str) -> VolumeTypeRecord | None:
        async with self.store.read() as conn:
            row = (
                await conn.execute(select(volume_types).where(volume_types.c.name == name))
            ).first()
        return self.mapper.one(row) if row is not None else None

    async def find(self, ref: str) -> VolumeTypeRecord | None:
        """A type by id, else by name."""
        return await self.get(id=ref) or await self.by_name(ref)

    async def set_specs(
        self, id: str, specs: Mapping[str, str], *, removed: str | None = None
    ) -> VolumeTypeRecord | None:
        """Add ``specs`` to the type's extra specs (and drop the key ``removed``)."""
        found = await self.get(id=id)
        if found is None:
            return None
        merged: dict[str, Any] = {**found.extra_specs, **specs}
        if removed is not None:
            merged.pop(removed, None)
        return await self.update(id=id, changes={"extra_specs": merged})

    async def delete(self, *, id: str) -> bool:
        """Delete the type; TypeInUse while a volume or snapshot has it."""
        async with self.store.write() as conn:
            used = await conn.execute(
                select(func.count()).where(
                    or_(
                        select(volumes.c.id).where(volumes.c.volume_type_id == id).exists(),
                        select(snapshots.c.id).where(snapshots.c.volume_type_id == id).exists(),
                    )
                )
            )
            if used.scalar_one():
                raise TypeInUse(id)
            result = await conn.execute(volume_types.delete().where(volume_types.c.id == id))
        return bool(result.rowcount)
