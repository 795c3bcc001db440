"""Tables and repository of the sync engine: change log, marks, registrations, outbox.

The **change log** (``sync_changes``) is written by database triggers on every
synchronisable table (migration 0002_sync_triggers), inside the transaction of the
write itself: whatever code path changed a project, a flavor or an image, the change
is captured atomically with it, and a crash can only lose both or neither. The engine
turns change-log rows of *marked* resources into **outbox** rows, one per (resource,
target), and advances its cursor in the same transaction. The change-log sequence is
the resource's version: monotonic per site, so receivers can ignore stale deliveries.

An outbox row holds only the latest version of a resource for a target: a newer change
overwrites the row (and resets its attempts), which is how a newer version supersedes
the queued older ones. Done rows stay, as the per-resource progress record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    and_,
    bindparam,
    case,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    update,
)

from edgefed.store import image
from edgefed.store.engine import AsyncConnection, Store, upsert_insert
from edgefed.store.schema import metadata
from edgefed.store.sync_rows import KINDS, Kind, Ref

SeqType = BigInteger().with_variant(Integer, "sqlite")

changes = Table(
    "sync_changes",
    metadata,
    Column("seq", SeqType, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("key", String(512), nullable=False),
    Column("op", String(8), nullable=False),
    Index("ix_sync_changes_kind_key", "kind", "key"),
)

cursors = Table(
    "sync_cursors",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("seq", BigInteger, nullable=False),
)

marks = Table(
    "sync_marks",
    metadata,
    Column("kind", String(32), nullable=False),
    Column("key", String(512), nullable=False),
    Column("targets", Text, nullable=False),
    Column("origin", String(64), nullable=True),
    Column("created_at", Float, nullable=False),
    PrimaryKeyConstraint("kind", "key", name="pk_sync_marks"),
)

# A receiver's registration at this source. ``pending``: the receiver asked and this
# site's operator has not accepted it yet (nothing is pushed or pulled); ``approved``:
# accepted ahead of the request; ``accepted``: this site serves it.
receivers = Table(
    "sync_receivers",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("state", String(12), nullable=False),
    Column("registered_at", Float, nullable=False),
    Column("requested_at", Float, nullable=True),
    Column("accepted_at", Float, nullable=True),
)

sources = Table(
    "sync_sources",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("registered_at", Float, nullable=False),
)

outbox = Table(
    "sync_outbox",
    metadata,
    Column("target", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("key", String(512), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("op", String(8), nullable=False),
    Column("rank", Integer, nullable=False),
    Column("state", String(12), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text, nullable=True),
    Column("next_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # When the row's current version was queued: the age of a pending delivery (lag).
    Column("queued_at", Float, nullable=False),
    PrimaryKeyConstraint("target", "kind", "key", name="pk_sync_outbox"),
    Index("ix_sync_outbox_due", "target", "state", "rank"),
)

applied = Table(
    "sync_applied",
    metadata,
    Column("kind", String(32), nullable=False),
    Column("key", String(512), nullable=False),
    Column("source", String(64), nullable=False),
    Column("version", BigInteger, nullable=False),
    PrimaryKeyConstraint("kind", "key", name="pk_sync_applied"),
)

fetches = Table(
    "sync_fetches",
    metadata,
    Column("image_id", String(36), primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("source", String(64), nullable=False),
    Column("size", BigInteger, nullable=True),
    Column("state", String(12), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text, nullable=True),
)

# A push that clashed with a row the receiver holds (sync_receive). Kept per (source,
# resource) with what the receiver holds there, until resolved (docs/sync.md).
conflicts = Table(
    "sync_conflicts",
    metadata,
    Column("source", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("key", String(512), nullable=False),
    Column("op", String(8), nullable=False),
    Column("clash", String(8), nullable=False),  # id | name | parent
    Column("held_kind", String(32), nullable=False),
    Column("held_key", String(512), nullable=False),
    Column("held_origin", String(64), nullable=True),  # None: this site's own row
    Column("message", Text, nullable=False),
    Column("first_seen", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("count", Integer, nullable=False),
    PrimaryKeyConstraint("source", "kind", "key", name="pk_sync_conflicts"),
)

PENDING, INFLIGHT, DONE, FAILING = "pending", "inflight", "done", "failing"
# The receiver refused the row because it clashes with one it holds: parked, not retried,
# until a newer version or the receiver's request after resolving it.
CONFLICT = "conflict"
UNDELIVERED = (PENDING, INFLIGHT, FAILING)
# Registration states at a source.
REQUESTED, APPROVED, ACCEPTED = "pending", "approved", "accepted"


@dataclass(frozen=True)
class Change:
    seq: int
    kind: str
    key: str
    op: str


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
class Mark:
    kind: str
    key: str
    targets: str
    origin: str | None


@dataclass(frozen=True)
class Outcome:
    """What one push to ``target`` came to: rows done, rows failed (error, retry at), and
    rows the receiver refused as a conflict with a row of its own (parked, with the error)."""

    target: str
    done: Sequence[OutboxEntry]
    failed: Sequence[tuple[OutboxEntry, str, float]]
    now: float
    conflicts: Sequence[tuple[OutboxEntry, str]] = ()


@dataclass(frozen=True)
class Fetch:
    image_id: str
    sha256: str
    source: str
    size: int | None
    state: str
    attempts: int


class SyncRepository:
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

    # ---- change log -----------------------------------------------------------------

    async def changes_after(self, seq: int, *, limit: int) -> list[Change]:
        async with self.store.read() as conn:
            rows = await conn.execute(
                select(changes).where(changes.c.seq > seq).order_by(changes.c.seq).limit(limit)
            )
            return [Change(r.seq, r.kind, r.key, r.op) for r in rows]

    async def cursor(self, name: str = "changes") -> int:
        async with self.store.read() as conn:
            row = (await conn.execute(select(cursors.c.seq).where(cursors.c.name == name))).first()
            return 0 if row is None else int(row[0])

    async def versions_of(self, refs: Iterable[Ref]) -> dict[Ref, tuple[int, str]]:
        """The latest (version, op) of each resource, from the change log (0 if never changed)."""
        wanted = list(refs)
        out: dict[Ref, tuple[int, str]] = {}
        async with self.store.read() as conn:
            for i in range(0, len(wanted), 400):
                chunk = wanted[i : i + 400]
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

    async def route(self, entries: Sequence[OutboxEntry], *, cursor: int, now: float) -> None:
        """Queue ``entries`` and move the change cursor, in one transaction."""
        async with self.store.write() as conn:
            await self._enqueue(conn, entries, now=now, force=False)
            await _set_cursor(conn, "changes", cursor)

    async def enqueue(self, entries: Sequence[OutboxEntry], *, now: float, force: bool) -> None:
        """Queue ``entries``; ``force`` re-sends a version already delivered (a full sync)."""
        async with self.store.write() as conn:
            await self._enqueue(conn, entries, now=now, force=force)

    async def _enqueue(
        self, conn: AsyncConnection, entries: Sequence[OutboxEntry], *, now: float, force: bool
    ) -> None:
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
                "rank": _rank(KINDS[e.kind], e.op),
                "state": PENDING,
                "attempts": 0,
                "last_error": None,
                "next_at": now,
                "updated_at": now,
                "queued_at": now,
            }
            for e in entries
        ]
        for i in range(0, len(rows), 2000):
            await conn.execute(stmt, rows[i : i + 2000])

    # ---- delivery ---------------------------------------------------------------------

    async def due(
        self, target: str, *, now: float, limit: int, max_rank: int | None = None
    ) -> list[OutboxEntry]:
        """Up to ``limit`` rows due for ``target``, parents first (a read: no write lock).

        Which rows are being pushed is kept in memory by the delivery workers (after a
        crash nothing is in flight, and receivers ignore a version they hold), so taking
        rows costs no write transaction and no fsync per push: with a hundred receivers
        those would queue behind each other on SQLite's single writer.
        """
        query = select(outbox).where(
            outbox.c.target == target,
            outbox.c.state.in_((PENDING, FAILING)),
            outbox.c.next_at <= now,
        )
        if max_rank is not None:
            query = query.where(outbox.c.rank <= max_rank)
        query = query.order_by(outbox.c.rank, outbox.c.version).limit(limit)
        async with self.store.read() as conn:
            rows = list(await conn.execute(query))
        return [
            OutboxEntry(r.target, r.kind, r.key, int(r.version), r.op, int(r.attempts), int(r.rank))
            for r in rows
        ]

    async def settle_many(self, outcomes: Sequence[Outcome]) -> None:
        """Record the outcomes of several pushes (any peers) in one transaction; rows
        superseded meanwhile are left to their new version."""
        done = [
            {"t": o.target, "k": e.kind, "y": e.key, "v": e.version, "now": o.now}
            for o in outcomes
            for e in o.done
        ]
        failed = [
            {
                "t": o.target,
                "k": e.kind,
                "y": e.key,
                "v": e.version,
                "now": o.now,
                "err": err[:500],
                "due": due,
            }
            for o in outcomes
            for e, err, due in o.failed
        ]
        parked = [
            {"t": o.target, "k": e.kind, "y": e.key, "v": e.version, "now": o.now,
             "err": err[:500]}
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
        async with self.store.write() as conn:
            if done:
                await conn.execute(
                    update(outbox)
                    .where(where)
                    .values(
                        state=DONE,
                        last_error=None,
                        updated_at=bindparam("now"),
                        attempts=outbox.c.attempts + 1,
                    ),
                    done,
                )
            if failed:
                await conn.execute(
                    update(outbox)
                    .where(where)
                    .values(
                        state=FAILING,
                        last_error=bindparam("err"),
                        next_at=bindparam("due"),
                        updated_at=bindparam("now"),
                        attempts=outbox.c.attempts + 1,
                    ),
                    failed,
                )
            if parked:
                await conn.execute(
                    update(outbox)
                    .where(where)
                    .values(
                        state=CONFLICT,
                        last_error=bindparam("err"),
                        updated_at=bindparam("now"),
                        attempts=outbox.c.attempts + 1,
                    ),
                    parked,
                )

    async def release_inflight(self) -> int:
        """After a restart nothing is in flight: put such rows back in the queue."""
        async with self.store.write() as conn:
            result = await conn.execute(
                update(outbox).where(outbox.c.state == INFLIGHT).values(state=PENDING)
            )
            return int(result.rowcount or 0)

    async def next_due(self, target: str) -> float | None:
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

    # ---- marks ------------------------------------------------------------------------

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

    # ---- registrations ------------------------------------------------------------------

    async def request_receiver(self, name: str, *, now: float, accept: bool) -> str:
        """``name`` asks to receive from this site; its registration state afterwards.

        A new request waits for this site's operator (``pending``) unless ``accept`` (the
        ``sync_accept`` setting names it) or the operator approved it ahead (``approved``).
        """
        async with self.store.write() as conn:
            state = await _receiver_state(conn, name)
            if state is None:
                new = ACCEPTED if accept else REQUESTED
                await conn.execute(
                    insert(receivers).values(
                        name=name, state=new, registered_at=now, requested_at=now,
                        accepted_at=now if new == ACCEPTED else None,
                    )
                )  # fmt: skip
                return new
            new = ACCEPTED if accept or state in (APPROVED, ACCEPTED) else REQUESTED
            values: dict[str, Any] = {"state": new, "requested_at": now}
            if new == ACCEPTED and state != ACCEPTED:
                values["accepted_at"] = now
            await conn.execute(update(receivers).where(receivers.c.name == name).values(values))
            return new

    async def accept_receiver(self, name: str, *, now: float) -> tuple[str | None, str]:
        """This site's operator accepts ``name``: (the state before, the state after).
        A pending request becomes ``accepted``; a site that has not asked yet is
        ``approved``, so that its request is accepted at once when it comes."""
        async with self.store.write() as conn:
            state = await _receiver_state(conn, name)
            if state is None:
                await conn.execute(
                    insert(receivers).values(
                        name=name, state=APPROVED, registered_at=now, accepted_at=now
                    )
                )
                return None, APPROVED
            if state == REQUESTED:
                await conn.execute(
                    update(receivers)
                    .where(receivers.c.name == name)
                    .values(state=ACCEPTED, accepted_at=now)
                )
                return state, ACCEPTED
            return state, state

    async def remove_receiver(self, name: str) -> bool:
        """Forget a registration in any state, and everything queued for it."""
        async with self.store.write() as conn:
            result = await conn.execute(delete(receivers).where(receivers.c.name == name))
            await conn.execute(delete(outbox).where(outbox.c.target == name))
            return bool(result.rowcount)

    async def list_receivers(self) -> list[str]:
        """The receivers this site serves (accepted), by name."""
        async with self.store.read() as conn:
            query = (
                select(receivers.c.name)
                .where(receivers.c.state == ACCEPTED)
                .order_by(receivers.c.name)
            )
            return [r[0] for r in await conn.execute(query)]

    async def registrations(self) -> list[dict[str, Any]]:
        """Every receiver registration with its state and times, by name."""
        async with self.store.read() as conn:
            rows = await conn.execute(select(receivers).order_by(receivers.c.name))
            return [dict(r._mapping) for r in rows]

    async def add_source(self, name: str, *, now: float) -> None:
        async with self.store.write() as conn:
            found = await conn.execute(select(sources.c.name).where(sources.c.name == name))
            if found.first() is None:
                await conn.execute(insert(sources).values(name=name, registered_at=now))

    async def remove_source(self, name: str) -> bool:
        """Forget a source and release what it delivered: the received resources are
        this site's own from now on (no longer locked; a later registration with the
        same source overwrites them again)."""
        async with self.store.write() as conn:
            result = await conn.execute(delete(sources).where(sources.c.name == name))
            await conn.execute(delete(conflicts).where(conflicts.c.source == name))
            tables = {id(k.table): k.table for k in KINDS.values() if k.has_origin}
            for table in tables.values():
                await conn.execute(update(table).where(table.c.origin == name).values(origin=None))
            return bool(result.rowcount)

    async def list_sources(self) -> list[str]:
        async with self.store.read() as conn:
            return [
                r[0] for r in await conn.execute(select(sources.c.name).order_by(sources.c.name))
            ]

    # ---- image fetches (receiver side) ---------------------------------------------------

    async def pending_fetches(self) -> list[Fetch]:
        async with self.store.read() as conn:
            rows = await conn.execute(select(fetches).where(fetches.c.state != DONE))
            return [
                Fetch(r.image_id, r.sha256, r.source, r.size, r.state, int(r.attempts))
                for r in rows
            ]

    async def fetch_failed(self, image_id: str, error: str) -> None:
        async with self.store.write() as conn:
            await conn.execute(
                update(fetches)
                .where(fetches.c.image_id == image_id)
                .values(state=FAILING, last_error=error[:500], attempts=fetches.c.attempts + 1)
            )

    async def fetch_done(self, image_id: str, *, sha256: str) -> None:
        """The blob is in place: the fetch is done and the image (still that blob) active."""
        async with self.store.write() as conn:
            await conn.execute(
                update(fetches)
                .where(fetches.c.image_id == image_id, fetches.c.sha256 == sha256)
                .values(state=DONE, last_error=None)
            )
            await conn.execute(
                update(image.images)
                .where(image.images.c.id == image_id, image.images.c.blob_sha256 == sha256)
                .values(status="active")
            )

    async def fetch_states(self, *, source: str | None = None) -> list[dict[str, Any]]:
        query = select(fetches)
        if source is not None:
            query = query.where(fetches.c.source == source)
        async with self.store.read() as conn:
            return [dict(r._mapping) for r in await conn.execute(query)]

    async def images_with_blob(self, sha256: str) -> list[str]:
        """The images here whose data is blob ``sha256``."""
        query = select(image.images.c.id).where(image.images.c.blob_sha256 == sha256)
        async with self.store.read() as conn:
            return [str(r[0]) for r in await conn.execute(query)]

    # ---- listing for full syncs -------------------------------------------------------------

    async def read(self) -> Any:
        """A read connection for the engine's row lookups (sync_rows functions)."""
        return self.store.read()


def delivery_rank(kind_name: str, op: str) -> int:
    """Where a row goes in the delivery order: parents first, deletes children first."""
    return _rank(KINDS[kind_name], op)


def _rank(kind: Kind, op: str) -> int:
    # Deletes go children first: after every upsert of the batch, in reverse rank.
    return kind.rank if op != "delete" else 10 + (2 - kind.rank)


async def _set_cursor(conn: AsyncConnection, name: str, seq: int) -> None:
    stmt = upsert_insert(conn, cursors)
    await conn.execute(
        stmt.on_conflict_do_update(index_elements=["name"], set_={"seq": stmt.excluded.seq}),
        {"name": name, "seq": seq},
    )


def upsert_marks(conn: AsyncConnection) -> Any:
    """A mark per (kind, key): a new one, or new targets and origin for the held one."""
    stmt = upsert_insert(conn, marks)
    return stmt.on_conflict_do_update(
        index_elements=["kind", "key"],
        set_={"targets": stmt.excluded.targets, "origin": stmt.excluded.origin},
    )


def upsert_applied(conn: AsyncConnection) -> Any:
    """The version of a resource applied here, and from which source."""
    stmt = upsert_insert(conn, applied)
    return stmt.on_conflict_do_update(
        index_elements=["kind", "key"],
        set_={"version": stmt.excluded.version, "source": stmt.excluded.source},
    )


async def put_mark_in(conn: AsyncConnection, mark: Mark, *, now: float) -> None:
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


async def want_blob(
    conn: AsyncConnection, *, image_id: str, sha256: str, source: str, size: int | None
) -> None:
    """Record that ``image_id`` needs blob ``sha256`` from ``source`` (the fetcher pulls it)."""
    stmt = upsert_insert(conn, fetches)
    values = {"image_id": image_id, "sha256": sha256, "source": source, "size": size,
              "state": PENDING, "attempts": 0, "last_error": None}  # fmt: skip
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["image_id"],
            set_={k: stmt.excluded[k] for k in values if k != "image_id"},
        ),
        values,
    )


async def _receiver_state(conn: AsyncConnection, name: str) -> str | None:
    query = select(receivers.c.state).where(receivers.c.name == name)
    row = (await conn.execute(query)).first()
    return None if row is None else str(row[0])


def capture_ddl(dialect: str, kinds: Mapping[str, Kind] = KINDS) -> list[str]:
    """The trigger DDL that writes every change of a synchronisable table to the change log."""
    statements: list[str] = []
    if dialect == "postgresql":
        statements.append(
            """
CREATE OR REPLACE FUNCTION sync_capture() RETURNS trigger AS $$
DECLARE
  r jsonb;
  k text := '';
  i int;
BEGIN
  IF TG_OP = 'DELETE' THEN r := to_jsonb(OLD); ELSE r := to_jsonb(NEW); END IF;
  FOR i IN 1..TG_NARGS - 1 LOOP
    IF i > 1 THEN k := k || '|'; END IF;
    k := k || (r ->> TG_ARGV[i]);
  END LOOP;
  INSERT INTO sync_changes (kind, key, op)
  VALUES (TG_ARGV[0], k, CASE WHEN TG_OP = 'DELETE' THEN 'delete' ELSE 'upsert' END);
  RETURN NULL;
END
$$ LANGUAGE plpgsql"""
        )
        for kind in kinds.values():
            args = ", ".join(f"'{a}'" for a in (kind.name, *kind.key_columns))
            statements.append(
                f"CREATE TRIGGER sync_capture_{kind.table.name} AFTER INSERT OR UPDATE OR DELETE "
                f"ON {kind.table.name} FOR EACH ROW EXECUTE FUNCTION sync_capture({args})"
            )
        return statements
    for kind in kinds.values():
        for trigger_event, row, op in (
            ("INSERT", "NEW", "upsert"),
            ("UPDATE", "NEW", "upsert"),
            ("DELETE", "OLD", "delete"),
        ):
            key = " || '|' || ".join(f'{row}."{c}"' for c in kind.key_columns)
            statements.append(
                f"CREATE TRIGGER sync_capture_{kind.table.name}_{trigger_event.lower()} "  # noqa: S608 - identifiers from code
                f"AFTER {trigger_event} ON {kind.table.name} FOR EACH ROW BEGIN "
                "INSERT INTO sync_changes (kind, key, op) "
                f"VALUES ('{kind.name}', {key}, '{op}'); END"
            )
    return statements


def drop_capture_ddl(dialect: str, kinds: Mapping[str, Kind] = KINDS) -> list[str]:
    if dialect == "postgresql":
        out = [
            f"DROP TRIGGER IF EXISTS sync_capture_{k.table.name} ON {k.table.name}"
            for k in kinds.values()
        ]
        return [*out, "DROP FUNCTION IF EXISTS sync_capture()"]
    return [
        f"DROP TRIGGER IF EXISTS sync_capture_{k.table.name}_{e}"
        for k in kinds.values()
        for e in ("insert", "update", "delete")
    ]
