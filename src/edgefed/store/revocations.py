"""Token revocation events (Keystone's revoke model, kept small).

An event revokes every token issued at or before ``issued_before`` that matches all of
its non-null fields. Events outlive the longest token lifetime and are then pruned.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Column, Float, Integer, String, Table, delete, insert, select

from edgefed.store.engine import Store
from edgefed.store.schema import metadata

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
    Column("issued_before", Float, nullable=False),
)


@dataclass(frozen=True, slots=True)
class RevocationEvent:
    issued_before: float
    user_id: str | None = None
    project_id: str | None = None
    domain_id: str | None = None
    audit_id: str | None = None
    audit_chain_id: str | None = None
    issuer: str | None = None


class RevocationRepository:
    def __init__(self, store: Store):
        self.store = store

    async def add(self, event: RevocationEvent) -> None:
        async with self.store.write() as conn:
            await conn.execute(
                insert(revocation_events).values(
                    user_id=event.user_id,
                    project_id=event.project_id,
                    domain_id=event.domain_id,
                    audit_id=event.audit_id,
                    audit_chain_id=event.audit_chain_id,
                    issuer=event.issuer,
                    issued_before=event.issued_before,
                )
            )

    async def all_since(self, oldest: float) -> list[RevocationEvent]:
        async with self.store.read() as conn:
            rows = await conn.execute(
                select(revocation_events).where(revocation_events.c.issued_before >= oldest)
            )
            return [
                RevocationEvent(
                    issued_before=r.issued_before,
                    user_id=r.user_id,
                    project_id=r.project_id,
                    domain_id=r.domain_id,
                    audit_id=r.audit_id,
                    audit_chain_id=r.audit_chain_id,
                    issuer=r.issuer,
                )
                for r in rows
            ]

    async def prune(self, older_than: dt.datetime) -> None:
        async with self.store.write() as conn:
            await conn.execute(
                delete(revocation_events).where(
                    revocation_events.c.issued_before < older_than.timestamp()
                )
            )
