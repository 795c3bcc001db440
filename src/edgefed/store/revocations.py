"""Token revocation events, this site's and those other sites made (``core.revocation``).

Events outlive the longest token lifetime and are then pruned. This site's own events
are numbered here (``seq``, per origin, in the transaction that stores them) and signed;
other sites' arrive numbered and signed, and are stored once each.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable

from sqlalchemy import (
    Column,
    Float,
    Integer,
    String,
    Table,
    UniqueConstraint,
    delete,
    func,
    insert,
    select,
    tuple_,
)

from edgefed.core.revocation import RevocationEvent
from edgefed.store.engine import Store
from edgefed.store.schema import metadata

__all__ = ["RevocationEvent", "RevocationRepository", "revocation_events"]

revocation_events = Table(
    "revocation_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", String(64), nullable=True),
    Column("project_id", String(64), nullable=True),
    Column("domain_id", String(64), nullable=True),
    Column("audit_id", String(64), nullable=True),
    Column("audit_chain_id", String(64), nullable=True),
    Column("issuer", String(64), nullable=True),
    Column("app_cred_id", String(64), nullable=True),
    Column("issued_before", Float, nullable=False),
    Column("origin", String(64), nullable=True),
    Column("seq", Integer, nullable=True),
    Column("floor", Integer, nullable=False, default=1),
    Column("created_at", Float, nullable=False, default=0.0),
    Column("signature", String(100), nullable=True),
    UniqueConstraint("origin", "seq", name="uq_revocation_events_origin_seq"),
)

# Held while this site numbers an event: on PostgreSQL two revocations made at once
# would otherwise read the same last number and the second would fail (an arbitrary key).
_NUMBERING_LOCK = 0x65646766_0201

_FIELDS = tuple(f.name for f in dataclasses.fields(RevocationEvent))


def _values(event: RevocationEvent) -> dict[str, object]:
    return {name: getattr(event, name) for name in _FIELDS}


class RevocationRepository:
    def __init__(self, store: Store):
        self.store = store

    async def add(self, event: RevocationEvent) -> None:
        """Store ``event`` as it is."""
        async with self.store.write() as conn:
            await conn.execute(insert(revocation_events).values(**_values(event)))

    async def add_local(
        self,
        event: RevocationEvent,
        *,
        origin: str,
        floor: int,
        now: float,
        sign: Callable[[RevocationEvent], RevocationEvent],
    ) -> RevocationEvent:
        """Number ``event`` as this site's next one, sign it and store it; the event."""
        async with self.store.write() as conn:
            if not self.store.is_sqlite:  # PostgreSQL: racing revocations take turns
                await conn.execute(select(func.pg_advisory_xact_lock(_NUMBERING_LOCK)))
            last = (
                await conn.execute(
                    select(func.max(revocation_events.c.seq)).where(
                        revocation_events.c.origin == origin
                    )
                )
            ).scalar()
            seq = int(last or 0) + 1
            numbered = dataclasses.replace(
                event, origin=origin, seq=seq, floor=min(floor, seq), created_at=now
            )
            signed = sign(numbered)
            await conn.execute(insert(revocation_events).values(**_values(signed)))
        return signed

    async def add_foreign(self, events: Iterable[RevocationEvent]) -> list[RevocationEvent]:
        """Store the events not held yet (by origin and number); those it stored."""
        wanted = {(e.origin, e.seq): e for e in events}
        if not wanted:
            return []
        async with self.store.write() as conn:
            held = await conn.execute(
                select(revocation_events.c.origin, revocation_events.c.seq).where(
                    tuple_(revocation_events.c.origin, revocation_events.c.seq).in_(list(wanted))
                )
            )
            for origin, seq in held:
                wanted.pop((origin, seq), None)
            if wanted:
                await conn.execute(insert(revocation_events), [_values(e) for e in wanted.values()])
        return list(wanted.values())

    async def all_since(self, oldest: float) -> list[RevocationEvent]:
        async with self.store.read() as conn:
            rows = await conn.execute(
                select(*(revocation_events.c[name] for name in _FIELDS)).where(
                    revocation_events.c.issued_before >= oldest
                )
            )
            return [RevocationEvent(**row._mapping) for row in rows]

    async def prune(self, older_than: dt.datetime) -> None:
        """Forget events no unexpired token can match. The newest event of each origin
        stays, so this site never numbers an event twice."""
        newest = (
            select(func.max(revocation_events.c.id))
            .group_by(revocation_events.c.origin)
            .scalar_subquery()
        )
        async with self.store.write() as conn:
            await conn.execute(
                delete(revocation_events).where(
                    revocation_events.c.issued_before < older_than.timestamp(),
                    revocation_events.c.id.not_in(newest),
                )
            )
