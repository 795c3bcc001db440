"""Conflicts at a receiver: pushes that clashed with a row this site holds.

A push may change only rows its source is the origin of (receive_item.py). When it
cannot, the clash is recorded here per (source, resource): what this site holds there
(the same row, a row with the same unique name, or a parent the row's key points at)
and whose it is, when it was first and last seen and how often. The operator resolves
it (docs/sync.md): after deleting or renaming the local row, by asking the source for
its version again; by *adopting* the source's version (the held row becomes the
source's); or by dismissing it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, update

from edgefed.store import identity
from edgefed.store.engine import AsyncConnection, Store
from edgefed.store.sync.kinds import KINDS
from edgefed.store.sync.rows import current_origin
from edgefed.store.sync.tables import conflicts

# What one source may leave recorded here: past this, new clashes are still refused but
# no longer recorded (a hostile source could otherwise fill the table with invented keys).
MAX_CONFLICTS_PER_SOURCE = 10_000


@dataclass(frozen=True)
class Clash:
    """What a pushed item ran into: a row held here that is not the source's."""

    clash: str  # "id" (the same key), "name" (a unique name), "parent" (a parent of a child)
    held_kind: str
    held_key: str
    held_origin: str | None  # None: this site's own row
    message: str


async def record_conflict(
    conn: AsyncConnection, *, source: str, kind: str, key: str, op: str, clash: Clash, now: float
) -> None:
    """Note (or count again) that ``source``'s ``kind`` ``key`` clashed with ``clash``."""
    where = and_(conflicts.c.source == source, conflicts.c.kind == kind, conflicts.c.key == key)
    seen = {"op": op, "clash": clash.clash, "held_kind": clash.held_kind,
            "held_key": clash.held_key, "held_origin": clash.held_origin,
            "message": clash.message[:1000], "last_seen": now}  # fmt: skip
    result = await conn.execute(
        update(conflicts).where(where).values(**seen, count=conflicts.c.count + 1)
    )
    if result.rowcount:
        return
    held = select(func.count()).select_from(conflicts).where(conflicts.c.source == source)
    if int((await conn.execute(held)).scalar() or 0) >= MAX_CONFLICTS_PER_SOURCE:
        return
    await conn.execute(
        insert(conflicts).values(source=source, kind=kind, key=key, first_seen=now, count=1, **seen)
    )


class ConflictRepository:
    """The clashes recorded at this receiver, and what resolving one changes here."""

    def __init__(self, store: Store):
        self.store = store

    async def list(
        self, *, source: str | None = None, kind: str | None = None, limit: int = 500
    ) -> list[dict[str, Any]]:
        query = select(conflicts).order_by(conflicts.c.source, conflicts.c.kind, conflicts.c.key)
        if source is not None:
            query = query.where(conflicts.c.source == source)
        if kind is not None:
            query = query.where(conflicts.c.kind == kind)
        async with self.store.read() as conn:
            return [dict(r._mapping) for r in await conn.execute(query.limit(limit))]

    async def counts(self) -> dict[str, int]:
        """Open conflicts per source."""
        query = select(conflicts.c.source, func.count()).group_by(conflicts.c.source)
        async with self.store.read() as conn:
            return {str(s): int(n) for s, n in await conn.execute(query)}

    async def get(self, *, source: str, kind: str, key: str) -> dict[str, Any] | None:
        query = select(conflicts).where(
            conflicts.c.source == source, conflicts.c.kind == kind, conflicts.c.key == key
        )
        async with self.store.read() as conn:
            row = (await conn.execute(query)).first()
            return None if row is None else dict(row._mapping)

    async def still_held(self, conflict: Mapping[str, Any]) -> bool:
        """Whether the row the clash was about is still here and still not the source's."""
        kind = KINDS.get(str(conflict["held_kind"]))
        if kind is None:
            return False
        async with self.store.read() as conn:
            found, origin = await current_origin(conn, kind, str(conflict["held_key"]))
        return found and origin != conflict["source"]

    async def drop(self, *, source: str, kind: str, key: str) -> bool:
        async with self.store.write() as conn:
            result = await conn.execute(
                delete(conflicts).where(
                    conflicts.c.source == source, conflicts.c.kind == kind, conflicts.c.key == key
                )
            )
            return bool(result.rowcount)

    async def adopt(self, conflict: Mapping[str, Any]) -> bool:
        """Hand the held row to the source (``origin`` = the source), so that the source's
        version replaces it; and forget the clash. False if the row is gone."""
        kind = KINDS[str(conflict["held_kind"])]
        source = str(conflict["source"])
        async with self.store.write() as conn:
            await conn.execute(
                delete(conflicts).where(
                    conflicts.c.source == source,
                    conflicts.c.kind == conflict["kind"],
                    conflicts.c.key == conflict["key"],
                )
            )
            if not kind.has_origin:
                return False
            key_values = kind.key_values(str(conflict["held_key"]))
            where = and_(*(kind.table.c[c] == v for c, v in key_values.items()))
            result = await conn.execute(update(kind.table).where(where).values(origin=source))
        identity.mark_identity_changed(self.store)
        return bool(result.rowcount)
