"""What every identity repository shares: the generation bump after each write,
Keystone's words for a name taken, and ``upsert`` for what arrives whole (bootstrap,
a test's synced row)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from edgefed.core.errors import Conflict
from edgefed.store.engine import Store
from edgefed.store.identity.generation import mark_identity_changed
from edgefed.store.records import RecordRepository, column_values

R = TypeVar("R")


def duplicate_message(what: str, values: Mapping[str, Any]) -> str:
    """Keystone's wording for a name (or an id) taken."""
    name = values.get("name")
    if name is None:
        detail = f"Duplicate entry found with ID {values.get('id')}"
    elif values.get("domain_id"):
        detail = f"Duplicate entry found with name {name} at domain ID {values['domain_id']}"
    else:
        detail = f"Duplicate entry found with name {name}"
    return f"Conflict occurred attempting to store {what} - {detail}."


class IdentityRecords(RecordRepository[R, R]):
    """One identity table's records; a new record is a whole record (ids are the
    service's, predictable), and every write bumps the store's identity generation."""

    # Keystone's word for the kind in a conflict ("project", "application_credential").
    what: ClassVar[str]
    order: tuple[str, ...] = ("name", "id")

    def __init__(self, store: Store):
        super().__init__(store, on_write=lambda: mark_identity_changed(store), conflict=self._taken)

    def _taken(self, exc: IntegrityError, values: Mapping[str, Any]) -> Exception:
        return Conflict(duplicate_message(self.what, values))

    async def upsert(self, *, record: R) -> None:
        """Insert ``record``, or replace the one with its id."""
        values = column_values(record)
        key = self.table.c[self.key]
        try:
            async with self.store.write() as conn:
                found = await conn.execute(select(key).where(key == values[self.key]))
                if found.first() is None:
                    await conn.execute(insert(self.table).values(**values))
                else:
                    await conn.execute(
                        update(self.table).where(key == values[self.key]).values(**values)
                    )
        finally:
            self._written()
