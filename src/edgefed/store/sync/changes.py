"""The change log: what changed here, in order, as the source's router reads it.

The log (``sync_changes``) is written by database triggers on every synchronisable
table (triggers.py, migration 0002_sync_triggers), inside the transaction of the write
itself: whatever code path changed a project, a flavor or an image, the change is
captured atomically with it, and a crash can only lose both or neither. The sequence
is the resource's version: monotonic per site, so receivers can ignore stale
deliveries. The router is the log's only reader; it keeps its place in a cursor, and
prunes what no one needs any more.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, event, func, select

from edgefed.store.engine import AsyncConnection, Store, upsert_insert
from edgefed.store.sync.kinds import Ref
from edgefed.store.sync.tables import CONFLICT, DONE, UNDELIVERED, changes, cursors, outbox

ROUTER_CURSOR = "changes"
# Resources per query when looking up versions (SQLite binds at most 999 parameters).
VERSION_CHUNK = 400


@dataclass(frozen=True)
class Change:
    seq: int
    kind: str
    key: str
    op: str


class ChangeLog:
    def __init__(self, store: Store):
        self.store = store

    def on_commit(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` after every commit of this store; returns the undo.

        SQLAlchemy's ``commit`` event fires *before* the database commits, so a reader
        woken by it can look too early, see nothing, and sleep until its timer. The
        commit event only flags the connection; the callback runs when the connection
        goes back to the pool, which ``Store.write()`` does after the commit is done.
        """
        engine = self.store.engine
        flag = "sync_committed"

        def committing(conn: Any) -> None:
            conn.info[flag] = True

        def checked_in(_dbapi_conn: Any, record: Any) -> None:
            if record.info.pop(flag, False):
                callback()

        event.listen(engine, "commit", committing)
        event.listen(engine.pool, "checkin", checked_in)

        def undo() -> None:
            event.remove(engine, "commit", committing)
            event.remove(engine.pool, "checkin", checked_in)

        return undo

    async def changes_after(self, seq: int, *, limit: int) -> list[Change]:
        async with self.store.read() as conn:
            rows = await conn.execute(
                select(changes).where(changes.c.seq > seq).order_by(changes.c.seq).limit(limit)
            )
            return [Change(r.seq, r.kind, r.key, r.op) for r in rows]

    async def cursor(self, name: str = ROUTER_CURSOR) -> int:
        async with self.store.read() as conn:
            row = (await conn.execute(select(cursors.c.seq).where(cursors.c.name == name))).first()
            return 0 if row is None else int(row[0])

    async def versions_of(self, refs: Iterable[Ref]) -> dict[Ref, tuple[int, str]]:
        """The latest (version, op) of each resource, from the change log (0 if never changed)."""
        wanted = list(refs)
        out: dict[Ref, tuple[int, str]] = {}
        async with self.store.read() as conn:
            for i in range(0, len(wanted), VERSION_CHUNK):
                chunk = wanted[i : i + VERSION_CHUNK]
                keys = {k for _, k in chunk}
                latest = (
                    select(changes.c.kind, changes.c.key, func.max(changes.c.seq).label("seq"))
                    .where(changes.c.key.in_(keys))
                    .group_by(changes.c.kind, changes.c.key)
                    .subquery()
                )
                query = select(changes.c.kind, changes.c.key, changes.c.seq, changes.c.op).join(
                    latest, changes.c.seq == latest.c.seq
                )
                for r in await conn.execute(query):
                    out[(r.kind, r.key)] = (int(r.seq), r.op)
        return {ref: out.get(ref, (0, "upsert")) for ref in wanted}

    async def prune_changes(self, *, cursor: int) -> int:
        """Drop change-log rows nobody needs any more; the number dropped.

        The router is the change log's only reader and has consumed everything up to
        ``cursor``; the targets read the outbox. Below the cursor, a change superseded by
        a newer change of the same resource is dead (the newest one is the resource's
        version and stays). A delete (tombstone) goes too once no target still waits
        for it, with its done outbox rows. The newest row of the whole log always stays,
        so SQLite never hands out a sequence number twice.
        """
        newer = changes.alias("newer")
        top = select(func.max(changes.c.seq)).scalar_subquery()
        superseded = (
            select(newer.c.seq)
            .where(newer.c.kind == changes.c.kind, newer.c.key == changes.c.key)
            .where(newer.c.seq > changes.c.seq)
            .exists()
        )
        waiting = (
            select(outbox.c.key)
            .where(outbox.c.kind == changes.c.kind, outbox.c.key == changes.c.key)
            .where(outbox.c.state.in_(UNDELIVERED))
            .exists()
        )
        async with self.store.write() as conn:
            dropped = await conn.execute(delete(changes).where(changes.c.seq <= cursor, superseded))
            tombstones = await conn.execute(
                delete(changes).where(
                    changes.c.seq <= cursor,
                    changes.c.seq < top,
                    changes.c.op == "delete",
                    ~waiting,
                )
            )
            logged = (
                select(changes.c.seq)
                .where(changes.c.kind == outbox.c.kind, changes.c.key == outbox.c.key)
                .exists()
            )
            await conn.execute(
                delete(outbox).where(
                    outbox.c.op == "delete", outbox.c.state.in_((DONE, CONFLICT)), ~logged
                )
            )
            return int(dropped.rowcount or 0) + int(tombstones.rowcount or 0)

    async def change_count(self) -> int:
        async with self.store.read() as conn:
            return int(
                (await conn.execute(select(func.count()).select_from(changes))).scalar() or 0
            )


async def set_cursor(conn: AsyncConnection, name: str, seq: int) -> None:
    """Move cursor ``name`` to ``seq`` in the caller's transaction."""
    stmt = upsert_insert(conn, cursors)
    await conn.execute(
        stmt.on_conflict_do_update(index_elements=["name"], set_={"seq": stmt.excluded.seq}),
        {"name": name, "seq": seq},
    )
