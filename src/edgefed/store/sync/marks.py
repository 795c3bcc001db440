"""Marks: which resources travel, and to which target sets.

A mark is set by this site's operator (``origin`` unset) or arrives with a received
resource, carrying the target set its source gave it (``origin`` = that source), so
that a receiver which is itself a source passes it on (central -> regional -> edge).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select

from edgefed.store.engine import AsyncConnection, Store, upsert_insert
from edgefed.store.sync.tables import marks


@dataclass(frozen=True)
class Mark:
    kind: str
    key: str  # a resource's key, or "*": every resource of the kind
    targets: str
    origin: str | None


class MarkRepository:
    def __init__(self, store: Store):
        self.store = store

    async def put_mark(self, mark: Mark, *, now: float) -> None:
        async with self.store.write() as conn:
            await put_mark_in(conn, mark, now=now)

    async def delete_mark(self, kind: str, key: str) -> bool:
        async with self.store.write() as conn:
            result = await conn.execute(
                delete(marks).where(marks.c.kind == kind, marks.c.key == key)
            )
            return bool(result.rowcount)

    async def list_marks(self) -> list[Mark]:
        async with self.store.read() as conn:
            rows = await conn.execute(select(marks).order_by(marks.c.kind, marks.c.key))
            return [Mark(r.kind, r.key, r.targets, r.origin) for r in rows]


def upsert_marks(conn: AsyncConnection) -> Any:
    """A mark per (kind, key): a new one, or new targets and origin for the held one."""
    stmt = upsert_insert(conn, marks)
    return stmt.on_conflict_do_update(
        index_elements=["kind", "key"],
        set_={"targets": stmt.excluded.targets, "origin": stmt.excluded.origin},
    )


async def put_mark_in(conn: AsyncConnection, mark: Mark, *, now: float) -> None:
    """Set ``mark`` in the caller's transaction."""
    await conn.execute(
        upsert_marks(conn),
        {
            "kind": mark.kind,
            "key": mark.key,
            "targets": mark.targets,
            "origin": mark.origin,
            "created_at": now,
        },
    )
