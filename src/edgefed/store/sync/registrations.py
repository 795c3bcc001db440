"""Registrations: the receivers this site serves and the sources it receives from.

Registration takes both operators (docs/sync.md): a receiver's request is recorded as
``pending`` at the source until the source's operator accepts it, unless the operator
approved that site ahead (``approved``) or the ``sync_accept`` setting names it. Only
``accepted`` receivers are routed to. At the receiver, a source is simply listed;
forgetting it releases what it delivered.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select, update

from edgefed.store.engine import AsyncConnection, Store
from edgefed.store.sync.kinds import KINDS
from edgefed.store.sync.tables import (
    ACCEPTED,
    APPROVED,
    REQUESTED,
    conflicts,
    outbox,
    receivers,
    sources,
)


class Registrations:
    def __init__(self, store: Store):
        self.store = store

    # ---- receivers of this source -------------------------------------------------------

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

    # ---- sources of this receiver -------------------------------------------------------

    async def add_source(self, name: str, *, now: float) -> None:
        async with self.store.write() as conn:
            found = await conn.execute(select(sources.c.name).where(sources.c.name == name))
            if found.first() is None:
                await conn.execute(insert(sources).values(name=name, registered_at=now))

    async def remove_source(self, name: str) -> bool:
        """Forget a source and release what it delivered: the received resources are
        this site's own from now on (no longer locked; a later registration with the
        same source finds them as conflicts, docs/sync.md)."""
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


async def _receiver_state(conn: AsyncConnection, name: str) -> str | None:
    query = select(receivers.c.state).where(receivers.c.name == name)
    row = (await conn.execute(query)).first()
    return None if row is None else str(row[0])
