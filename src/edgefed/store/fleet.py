"""The durable fleet registry and the one-time enrollment tokens."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Boolean, Column, Float, Integer, String, Table, select, update

from edgefed.core.errors import ValidationFailed
from edgefed.core.fleet import SiteEntry
from edgefed.store.engine import Store, upsert_insert
from edgefed.store.schema import JsonDoc, metadata

log = logging.getLogger("edgefed.store.fleet")

fleet_sites = Table(
    "fleet_sites",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("document", JsonDoc, nullable=False),
    Column("version", Integer, nullable=False),
)

enrollment_tokens = Table(
    "enrollment_tokens",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("secret_hash", String(128), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("used_at", Float, nullable=True),
    Column("used_by", String(64), nullable=True),
    # The site the token was made for, whether it enrolls an authority, and the key
    # that used it (a retry of the same join is the same enrollment, not a second one).
    Column("site_name", String(64), nullable=False, default=""),
    Column("authority", Boolean, nullable=False, default=False),
    Column("used_key", String(64), nullable=True),
)


@dataclass(frozen=True, slots=True)
class EnrollmentRecord:
    id: str
    secret_hash: str
    created_at: float
    expires_at: float
    created_by: str
    used_at: float | None
    used_by: str | None
    site_name: str = ""
    authority: bool = False
    used_key: str | None = None


class FleetRepository:
    def __init__(self, store: Store):
        self.store = store

    async def all(self) -> list[SiteEntry]:
        """The stored entries; one that no longer passes the checks is left out (logged),
        so a bad row can never stop the site from starting."""
        async with self.store.read() as conn:
            rows = (await conn.execute(select(fleet_sites.c.name, fleet_sites.c.document))).all()
        entries = []
        for row in rows:
            try:
                entries.append(SiteEntry.from_json(row.document))
            except ValidationFailed as exc:
                log.error("stored registry entry %r is invalid and ignored: %s", row.name, exc)
        return entries

    async def put(self, entries: list[SiteEntry]) -> None:
        """Upsert entries (the caller decided they win, see core.fleet.should_replace)."""
        if not entries:
            return
        async with self.store.write() as conn:
            for entry in entries:
                stmt = upsert_insert(conn, fleet_sites).values(
                    name=entry.name, document=entry.to_json(), version=entry.version
                )
                stmt = stmt.on_conflict_do_update(
                    index_elements=[fleet_sites.c.name],
                    set_={"document": stmt.excluded.document, "version": stmt.excluded.version},
                )
                await conn.execute(stmt)

    async def add_enrollment(self, record: EnrollmentRecord) -> None:
        async with self.store.write() as conn:
            await conn.execute(
                enrollment_tokens.insert().values(
                    id=record.id,
                    secret_hash=record.secret_hash,
                    created_at=record.created_at,
                    expires_at=record.expires_at,
                    created_by=record.created_by,
                    site_name=record.site_name,
                    authority=record.authority,
                )
            )

    async def get_enrollment(self, token_id: str) -> EnrollmentRecord | None:
        async with self.store.read() as conn:
            row = (
                await conn.execute(
                    select(enrollment_tokens).where(enrollment_tokens.c.id == token_id)
                )
            ).first()
        if row is None:
            return None
        return _record(row)

    async def consume_enrollment_and_put(
        self, token_id: str, *, now: float, entry: SiteEntry
    ) -> bool:
        """Mark the token used by ``entry`` (its name and key) and store the entry, in one
        transaction. False when the token was used meanwhile by anything else.
        """
        async with self.store.write() as conn:
            result = await conn.execute(
                update(enrollment_tokens)
                .where(enrollment_tokens.c.id == token_id)
                .where(
                    (enrollment_tokens.c.used_at.is_(None))
                    | (
                        (enrollment_tokens.c.used_by == entry.name)
                        & (enrollment_tokens.c.used_key == entry.public_key)
                    )
                )
                .values(used_at=now, used_by=entry.name, used_key=entry.public_key)
            )
            if result.rowcount != 1:
                return False
            stmt = upsert_insert(conn, fleet_sites).values(
                name=entry.name, document=entry.to_json(), version=entry.version
            )
            stmt = stmt.on_conflict_do_update(
                index_elements=[fleet_sites.c.name],
                set_={"document": stmt.excluded.document, "version": stmt.excluded.version},
            )
            await conn.execute(stmt)
            return True

    async def list_enrollments(self) -> list[EnrollmentRecord]:
        async with self.store.read() as conn:
            rows = await conn.execute(select(enrollment_tokens))
            return [_record(r) for r in rows]


def _record(row: Any) -> EnrollmentRecord:
    return EnrollmentRecord(
        id=row.id,
        secret_hash=row.secret_hash,
        created_at=row.created_at,
        expires_at=row.expires_at,
        created_by=row.created_by,
        used_at=row.used_at,
        used_by=row.used_by,
        site_name=row.site_name,
        authority=bool(row.authority),
        used_key=row.used_key,
    )
