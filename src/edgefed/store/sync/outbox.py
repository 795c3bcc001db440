"""The outbox: what this source still has to deliver, one row per resource and target.

The router turns change-log rows of marked resources into outbox rows and moves its
cursor in the same transaction (``route``). A row holds only the latest version of a
resource for a target: a newer change overwrites the row (and resets its attempts),
which is how a newer version supersedes the queued older ones. Done rows stay, as the
per-resource progress record; rows the receiver refused as a conflict are parked.

Which rows are being pushed is not written here: the delivery workers keep their claims
in memory (``claim_due``), so taking rows costs no write transaction and no fsync per
push (with a hundred receivers those would queue behind each other on SQLite's single
writer). After a crash nothing is in flight, and receivers ignore a version they hold.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, case, func, or_, select, update

from edgefed.store.engine import AsyncConnection, Store, upsert_insert
from edgefed.store.sync.changes import ROUTER_CURSOR, set_cursor
from edgefed.store.sync.kinds import KINDS, Ref, rank_of
from edgefed.store.sync.tables import (
    CONFLICT,
    DONE,
    FAILING,
    INFLIGHT,
    PENDING,
    UNDELIVERED,
    applied,
    outbox,
)

# Rows per statement when queueing (a full sync queues tens of thousands).
ENQUEUE_CHUNK = 2000
MAX_ERROR_LENGTH = 500


@dataclass(frozen=True)
class OutboxEntry:
    target: str
    kind: str
    key: str
    version: int
    op: str
    attempts: int = 0
    rank: int = 0


@dataclass(frozen=True)
class PeerBacklog:
    pending: int  # undelivered: pending, in flight or failing
    failing: int
    oldest_queued_at: float
    last_error: str | None  # of one failing row
    conflicts: int = 0  # parked: the receiver holds a row of its own there


@dataclass(frozen=True)
class Outcome:
    """What one push to ``target`` came to: rows done, rows failed (error, retry at), and
    rows the receiver refused as a conflict with a row of its own (parked, with the error)."""

    target: str
    done: Sequence[OutboxEntry]
    failed: Sequence[tuple[OutboxEntry, str, float]]
    now: float
    conflicts: Sequence[tuple[OutboxEntry, str]] = ()


def claim(
    rows: Iterable[OutboxEntry], *, claims: MutableMapping[Ref, int], limit: int
) -> tuple[list[OutboxEntry], bool]:
    """Claim up to ``limit`` of ``rows`` into ``claims`` (in flight: (kind, key) -> rank);
    also whether a row was left for later.

    A row already claimed is left, and while rows of some rank are in flight no row of a
    higher rank is taken, so a child never overtakes its parent on a parallel connection.
    """
    busy = min(claims.values(), default=None)
    taken: list[OutboxEntry] = []
    left = False
    for entry in rows:
        ref = (entry.kind, entry.key)
        if ref in claims or (busy is not None and entry.rank > busy):
            left = True
            continue
        if len(taken) >= limit:
            left = True
            break
        taken.append(entry)
    for entry in taken:
        claims[(entry.kind, entry.key)] = entry.rank
    return taken, left


class SyncOutbox:
    def __init__(self, store: Store):
        self.store = store

    # ---- queueing ---------------------------------------------------------------------

    async def route(self, entries: Sequence[OutboxEntry], *, cursor: int, now: float) -> None:
        """Queue ``entries`` and move the router's change cursor, in one transaction."""
        async with self.store.write() as conn:
            await _enqueue(conn, entries, now=now, force=False)
            await set_cursor(conn, ROUTER_CURSOR, cursor)

    async def enqueue(self, entries: Sequence[OutboxEntry], *, now: float, force: bool) -> None:
        """Queue ``entries``; ``force`` re-sends a version already delivered (a full sync)."""
        async with self.store.write() as conn:
            await _enqueue(conn, entries, now=now, force=force)

    # ---- delivery ---------------------------------------------------------------------

    async def claim_due(
        self, target: str, *, now: float, limit: int, claims: MutableMapping[Ref, int]
    ) -> list[OutboxEntry]:
        """Claim up to ``limit`` rows due for ``target`` into ``claims``, parents first.

        ``claims`` is the caller's in-memory table of rows in flight to ``target``
        (``claim``); rows in it are not taken again. The claims are recorded after the
        read with no await in between, so two push loops sharing ``claims`` never take
        the same row. A read: no write lock.
        """
        busy = min(claims.values(), default=None)
        query = select(outbox).where(
            outbox.c.target == target,
            outbox.c.state.in_((PENDING, FAILING)),
            outbox.c.next_at <= now,
        )
        if busy is not None:
            query = query.where(outbox.c.rank <= busy)
        query = query.order_by(outbox.c.rank, outbox.c.version).limit(limit + len(claims))
        async with self.store.read() as conn:
            rows = [
                OutboxEntry(
                    r.target, r.kind, r.key, int(r.version), r.op, int(r.attempts), int(r.rank)
                )
                for r in await conn.execute(query)
            ]
        taken, _ = claim(rows, claims=claims, limit=limit)
        return taken

    async def settle_many(self, outcomes: Sequence[Outcome]) -> None:
        """Record the outcomes of several pushes (any peers) in one transaction; rows
        superseded meanwhile are left to their new version."""
        done = [
            {"t": o.target, "k": e.kind, "y": e.key, "v": e.version, "now": o.now}
            for o in outcomes
            for e in o.done
        ]
        failed = [
            {"t": o.target, "k": e.kind, "y": e.key, "v": e.version, "now": o.now,
             "err": err[:MAX_ERROR_LENGTH], "due": due}
            for o in outcomes
            for e, err, due in o.failed
        ]  # fmt: skip
        parked = [
            {"t": o.target, "k": e.kind, "y": e.key, "v": e.version, "now": o.now,
             "err": err[:MAX_ERROR_LENGTH]}
            for o in outcomes
            for e, err in o.conflicts
        ]  # fmt: skip
        if not done and not failed and not parked:
            return
        where = and_(
            outbox.c.target == bindparam("t"),
            outbox.c.kind == bindparam("k"),
            outbox.c.key == bindparam("y"),
            outbox.c.version == bindparam("v"),
            outbox.c.state != DONE,  # no IN in an executemany
        )
        attempted = {"updated_at": bindparam("now"), "attempts": outbox.c.attempts + 1}
        async with self.store.write() as conn:
            if done:
                values = {"state": DONE, "last_error": None, **attempted}
                await conn.execute(update(outbox).where(where).values(values), done)
            if failed:
                values = {"state": FAILING, "last_error": bindparam("err"),
                          "next_at": bindparam("due"), **attempted}  # fmt: skip
                await conn.execute(update(outbox).where(where).values(values), failed)
            if parked:
                values = {"state": CONFLICT, "last_error": bindparam("err"), **attempted}
                await conn.execute(update(outbox).where(where).values(values), parked)

    async def release_inflight(self) -> int:
        """Rows an older version marked in flight go back to the queue (claims are in
        memory now, and after a restart nothing is in flight)."""
        async with self.store.write() as conn:
            result = await conn.execute(
                update(outbox).where(outbox.c.state == INFLIGHT).values(state=PENDING)
            )
            return int(result.rowcount or 0)

    async def next_due(self, target: str) -> float | None:
        """When the next undelivered row for ``target`` is due (None: nothing waits)."""
        async with self.store.read() as conn:
            value = (
                await conn.execute(
                    select(func.min(outbox.c.next_at)).where(
                        outbox.c.target == target, outbox.c.state.in_((PENDING, FAILING))
                    )
                )
            ).scalar()
            return None if value is None else float(value)

    async def targets_with_work(self) -> list[str]:
        async with self.store.read() as conn:
            rows = await conn.execute(
                select(outbox.c.target)
                .where(outbox.c.state.in_((PENDING, FAILING, INFLIGHT)))
                .distinct()
            )
            return [r[0] for r in rows]

    # ---- progress -----------------------------------------------------------------------

    async def backlog(self) -> dict[str, PeerBacklog]:
        """Per target: undelivered rows, failing rows, when the oldest was queued, an
        error, and rows parked as conflicts."""
        waiting = outbox.c.state.in_(UNDELIVERED)
        pending = func.sum(case((waiting, 1), else_=0))
        failing = func.sum(case((outbox.c.state == FAILING, 1), else_=0))
        parked = func.sum(case((outbox.c.state == CONFLICT, 1), else_=0))
        oldest = func.min(case((waiting, outbox.c.queued_at), else_=None))
        error = func.max(case((outbox.c.state == FAILING, outbox.c.last_error), else_=None))
        query = (
            select(outbox.c.target, pending, failing, oldest, error, parked)
            .where(outbox.c.state.in_((*UNDELIVERED, CONFLICT)))
            .group_by(outbox.c.target)
        )
        async with self.store.read() as conn:
            return {
                str(target): PeerBacklog(
                    int(count or 0), int(fails or 0), float(first or 0.0), last_error,
                    int(held or 0),
                )
                for target, count, fails, first, last_error, held in await conn.execute(query)
            }  # fmt: skip

    async def counts(self) -> dict[str, dict[str, int]]:
        """Rows per target and state."""
        async with self.store.read() as conn:
            rows = await conn.execute(
                select(outbox.c.target, outbox.c.state, func.count()).group_by(
                    outbox.c.target, outbox.c.state
                )
            )
            out: dict[str, dict[str, int]] = {}
            for target, state, count in rows:
                out.setdefault(target, {})[state] = int(count)
            return out

    async def entries(
        self, *, target: str | None = None, kind: str | None = None, key: str | None = None,
        states: Sequence[str] | None = None, limit: int = 100, received_from: str | None = None,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Outbox rows; ``received_from``: only resources that source delivered here."""
        query = select(outbox).order_by(outbox.c.target, outbox.c.rank, outbox.c.kind, outbox.c.key)
        if received_from is not None:
            query = query.join(
                applied, and_(applied.c.kind == outbox.c.kind, applied.c.key == outbox.c.key)
            ).where(applied.c.source == received_from)
        if target is not None:
            query = query.where(outbox.c.target == target)
        if kind is not None:
            query = query.where(outbox.c.kind == kind)
        if key is not None:
            query = query.where(outbox.c.key == key)
        if states:
            query = query.where(outbox.c.state.in_(list(states)))
        async with self.store.read() as conn:
            return [dict(r._mapping) for r in await conn.execute(query.limit(limit))]


async def _enqueue(
    conn: AsyncConnection, entries: Sequence[OutboxEntry], *, now: float, force: bool
) -> None:
    """Queue ``entries`` (a newer version supersedes the queued row); ``force`` also
    re-queues the version a row already settled with."""
    if not entries:
        return
    stmt = upsert_insert(conn, outbox)
    excluded = stmt.excluded
    newer = outbox.c.version < excluded.version
    settled = or_(outbox.c.state == DONE, outbox.c.state == CONFLICT)  # no IN: executemany
    condition = or_(newer, and_(outbox.c.version == excluded.version, settled))
    stmt = stmt.on_conflict_do_update(
        index_elements=["target", "kind", "key"],
        set_={
            "version": excluded.version,
            "op": excluded.op,
            "rank": excluded.rank,
            "state": PENDING,
            "attempts": 0,
            "last_error": None,
            "next_at": excluded.next_at,
            "updated_at": excluded.updated_at,
            # a newer version of an undelivered row is as late as the first one
            "queued_at": case((settled, excluded.queued_at), else_=outbox.c.queued_at),
        },
        where=condition if force else newer,
    )
    rows = [
        {
            "target": e.target,
            "kind": e.kind,
            "key": e.key,
            "version": e.version,
            "op": e.op,
            "rank": rank_of(KINDS[e.kind], e.op),
            "state": PENDING,
            "attempts": 0,
            "last_error": None,
            "next_at": now,
            "updated_at": now,
            "queued_at": now,
        }
        for e in entries
    ]
    for i in range(0, len(rows), ENQUEUE_CHUNK):
        await conn.execute(stmt, rows[i : i + ENQUEUE_CHUNK])
