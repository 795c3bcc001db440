"""Drains of this site: the one under way (``draining``, then ``drained`` once every
guest left) and those undone (``undrained``). The plan (which server goes where, under
which relocation) is kept in ``details`` so that a drain asked again takes up where it
was."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update

from edgefed.store.compute.tables import drains
from edgefed.store.engine import Store
from edgefed.store.schema import utcnow

ACTIVE = ("draining", "drained")


@dataclass(frozen=True, slots=True)
class DrainRecord:
    id: str
    targets: str
    state: str
    details: dict[str, Any]
    created_at: dt.datetime
    updated_at: dt.datetime


def _record(row: Any) -> DrainRecord:
    return DrainRecord(**{c.name: getattr(row, c.name) for c in drains.columns})


class Drains:
    def __init__(self, store: Store):
        self.store = store

    async def active(self) -> DrainRecord | None:
        query = select(drains).where(drains.c.state.in_(ACTIVE)).order_by(drains.c.created_at)
        async with self.store.read() as conn:
            row = (await conn.execute(query)).first()
        return _record(row) if row is not None else None

    async def create(self, *, id: str, targets: str, details: dict[str, Any]) -> DrainRecord:
        now = utcnow()
        async with self.store.write() as conn:
            await conn.execute(
                insert(drains).values(
                    id=id,
                    targets=targets,
                    state="draining",
                    details=details,
                    created_at=now,
                    updated_at=now,
                )
            )
        found = await self.active()
        assert found is not None
        return found

    async def change(self, id: str, **values: Any) -> None:
        async with self.store.write() as conn:
            await conn.execute(
                update(drains).where(drains.c.id == id).values(updated_at=utcnow(), **values)
            )
