"""Relocations of servers between sites, as each side records them.

The source's row (``out``) is the move's journal: its phase says what was done last,
so that a source that restarts takes the move up where it was. The destination's row
(``in``) holds what the source was granted (the grant's sha256, never the grant), the
server it will create, and how many bytes of the disk it has (the file itself is in
the site's data directory). Phases change by compare-and-set: two runners racing on
one move cannot both advance it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update

from edgefed.store.compute.tables import relocations
from edgefed.store.engine import Store
from edgefed.store.schema import utcnow

# Phases where a move is over, one way or the other.
FINISHED = ("done", "failed", "aborted")


@dataclass(frozen=True, slots=True)
class RelocationRecord:
    id: str
    direction: str  # "out" (this site is the source) or "in" (the destination)
    server_id: str
    project_id: str
    user_id: str
    peer_site: str
    peer_id: str | None
    mode: str
    phase: str
    error: str | None
    grant: str | None
    disk_format: str | None
    disk_size: int | None
    disk_sha256: str | None
    done_bytes: int
    was_running: bool
    image_id: str | None
    details: dict[str, Any]
    created_at: dt.datetime
    updated_at: dt.datetime

    @property
    def finished(self) -> bool:
        return self.phase in FINISHED


def _record(row: Any) -> RelocationRecord:
    return RelocationRecord(**{c.name: getattr(row, c.name) for c in relocations.columns})


class Relocations:
    def __init__(self, store: Store):
        self.store = store

    async def create(self, **values: Any) -> RelocationRecord:
        now = utcnow()
        values = {"done_bytes": 0, "was_running": False, "details": {}, **values}
        async with self.store.write() as conn:
            await conn.execute(insert(relocations).values(created_at=now, updated_at=now, **values))
        found = await self.get(values["id"])
        assert found is not None
        return found

    async def get(self, id: str) -> RelocationRecord | None:
        async with self.store.read() as conn:
            row = (await conn.execute(select(relocations).where(relocations.c.id == id))).first()
        return _record(row) if row is not None else None

    async def list(
        self,
        *,
        direction: str | None = None,
        server_id: str | None = None,
        project_id: str | None = None,
        unfinished: bool = False,
    ) -> list[RelocationRecord]:
        query = select(relocations).order_by(relocations.c.created_at)
        if direction is not None:
            query = query.where(relocations.c.direction == direction)
        if server_id is not None:
            query = query.where(relocations.c.server_id == server_id)
        if project_id is not None:
            query = query.where(relocations.c.project_id == project_id)
        if unfinished:
            query = query.where(relocations.c.phase.not_in(FINISHED))
        async with self.store.read() as conn:
            return [_record(row) for row in await conn.execute(query)]

    async def change(
        self, id: str, *, expect: Iterable[str] | None = None, **values: Any
    ) -> RelocationRecord | None:
        """Change the row; with ``expect``, only while its phase is one of them (None when
        it is not: another runner moved it on)."""
        query = update(relocations).where(relocations.c.id == id)
        if expect is not None:
            query = query.where(relocations.c.phase.in_(list(expect)))
        async with self.store.write() as conn:
            result = await conn.execute(query.values(updated_at=utcnow(), **values))
            if result.rowcount == 0:
                return None
        return await self.get(id)

    async def merge_details(self, id: str, details: Mapping[str, Any]) -> RelocationRecord | None:
        found = await self.get(id)
        if found is None:
            return None
        return await self.change(id, details={**found.details, **details})
