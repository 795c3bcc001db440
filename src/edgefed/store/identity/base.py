"""What every identity repository shares: the generation bump after each write,
Keystone's words for a name taken, ``upsert`` for what arrives whole (a test's synced
row), a delete that takes what hangs on a record with it, and ``Pairs``: the tables of
two ids and nothing more (who is in which group, which role implies which)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from sqlalchemy import ColumnElement, Table, and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import Executable, Select

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

    async def records_of(self, query: Select[Any]) -> list[R]:
        """The records ``query`` (a select of this table, a join) finds."""
        async with self.store.read() as conn:
            return await self._records(conn, query)

    async def delete_with(self, id: str, *also: Executable) -> bool:
        """Delete one record and, in the same transaction, what hangs on it (``also``)."""
        try:
            async with self.store.write() as conn:
                result = await conn.execute(delete(self.table).where(self._one(id)))
                for statement in also:
                    await conn.execute(statement)
        finally:
            self._written()
        return bool(result.rowcount)

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


class Pairs:
    """A table of (first, second) ids and nothing more, each pair stored once. Methods
    take a pair by its column names (``group_id=…, user_id=…``); every change bumps the
    identity generation."""

    table: ClassVar[Table]
    columns: ClassVar[tuple[str, str]]

    def __init__(self, store: Store):
        self.store = store

    def _pair(self, pair: Mapping[str, str]) -> ColumnElement[bool]:
        if set(pair) != set(self.columns):
            raise TypeError(f"{type(self).__name__}: a pair is {self.columns}, not {sorted(pair)}")
        return and_(*(self.table.c[name] == value for name, value in pair.items()))

    async def all(self) -> list[tuple[str, str]]:
        first, second = (self.table.c[name] for name in self.columns)
        async with self.store.read() as conn:
            return [(row[0], row[1]) for row in await conn.execute(select(first, second))]

    async def contains(self, **pair: str) -> bool:
        async with self.store.read() as conn:
            found = await conn.execute(select(self.table).where(self._pair(pair)))
            return found.first() is not None

    async def add(self, **pair: str) -> bool:
        """Store the pair; False when it was stored already."""
        try:
            async with self.store.write() as conn:
                found = await conn.execute(select(self.table).where(self._pair(pair)))
                if found.first() is not None:
                    return False
                await conn.execute(insert(self.table).values(**pair))
        finally:
            mark_identity_changed(self.store)
        return True

    async def remove(self, **pair: str) -> bool:
        """Forget the pair; whether it was stored."""
        try:
            async with self.store.write() as conn:
                result = await conn.execute(delete(self.table).where(self._pair(pair)))
        finally:
            mark_identity_changed(self.store)
        return bool(result.rowcount)
