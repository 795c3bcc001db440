"""Rows become records in one way: ``RecordMapper``; one table's CRUD: ``RecordRepository``.

A record is a frozen dataclass of the service's own (``NetworkRecord``, ``HostRecord``…),
declared once next to its table. The mapper reads the dataclass's fields and types
once and fills a record from a row by column name: a column the dataclass does not
name is ignored, a field no column fills keeps its default (``PortRecord.fixed_ips``
comes from another table), and a JSON document that SQL returns as NULL becomes the
empty value of the field's type (``tuple[str, ...]`` → ``()``, ``dict`` → ``{}``).

``RecordRepository`` is the repository the API kit (``edgefed.api.resource``) talks
to for most resources — get, list with filters and paging, create, update, delete —
taking and returning records, never rows. A service with more to say about its
table (a cascade, an allocation, a default row) subclasses it.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    bindparam,
    delete,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.engine import Result, Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import Select

from edgefed.core.errors import Conflict
from edgefed.core.ids import new_uuid
from edgefed.store.engine import AsyncConnection, Store
from edgefed.store.schema import utcnow

R = TypeVar("R")
N = TypeVar("N")

Convert = Callable[[Any], Any]
# (field name, position in the row, conversion or None), for one shape of result.
_Plan = tuple[tuple[str, int, Convert | None], ...]


def _converter(hint: Any) -> Convert | None:
    """How a column value becomes the field's value, from the field's type."""
    origin = typing.get_origin(hint) or hint
    if origin is tuple:
        return lambda value: tuple(value) if value is not None else ()
    if origin is list:
        return lambda value: list(value) if value is not None else []
    if origin is dict:
        return lambda value: value if value is not None else {}
    if origin is bool:
        return bool
    return None


class RecordMapper(Generic[R]):
    """Rows (or mappings) of a table → records of one dataclass; built once per class."""

    __slots__ = ("_convert", "_plans", "names", "record")

    def __init__(self, record: type[R]):
        if not dataclasses.is_dataclass(record):
            raise TypeError(f"{record!r} is not a dataclass")
        hints = typing.get_type_hints(record)
        self.record = record
        self.names = tuple(f.name for f in dataclasses.fields(record) if f.init)
        self._convert = {name: _converter(hints[name]) for name in self.names}
        self._plans: dict[tuple[str, ...], _Plan] = {}

    def _plan(self, keys: tuple[str, ...]) -> _Plan:
        plan = self._plans.get(keys)
        if plan is None:
            position = {key: i for i, key in enumerate(keys)}
            plan = tuple(
                (name, position[name], self._convert[name])
                for name in self.names
                if name in position
            )
            self._plans[keys] = plan
        return plan

    @staticmethod
    def _build(record: type[R], row: Sequence[Any], plan: _Plan, extra: Mapping[str, Any]) -> R:
        values = {
            name: (convert(row[i]) if convert is not None else row[i]) for name, i, convert in plan
        }
        return record(**values, **extra)

    def one(self, row: Row[Any], **extra: Any) -> R:
        """The record of one row; ``extra`` fills fields that no column holds."""
        return self._build(self.record, row, self._plan(tuple(row._fields)), extra)

    def all(
        self, result: Result[Any], extras: Mapping[str, Mapping[str, Any]] | None = None
    ) -> list[R]:
        """The records of a result; ``extras`` fills fields no column holds, by ``id``."""
        plan = self._plan(tuple(result.keys()))
        record, build = self.record, self._build
        if not extras:
            return [build(record, row, plan, {}) for row in result]
        return [build(record, row, plan, extras.get(row.id, {})) for row in result]

    def from_mapping(self, values: Mapping[str, Any], **extra: Any) -> R:
        keys = tuple(values)
        return self._build(self.record, tuple(values.values()), self._plan(keys), extra)


def column_values(new: object) -> dict[str, Any]:
    """A new record (a dataclass) as column values: mappings become plain dicts, which
    the JSON columns store."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(new):  # type: ignore[arg-type]
        value = getattr(new, f.name)
        values[f.name] = dict(value) if isinstance(value, Mapping) else value
    return values


@dataclass(frozen=True, slots=True)
class Related:
    """A field of a record that another table holds (a network's subnets, a port's
    addresses): the rows of ``query`` for the records' ids (its expanding ``ids``
    parameter), grouped by the column ``key``, each made into an item by ``item``;
    the field gets them as a tuple, in the query's order."""

    field: str
    query: Select[Any]
    key: str
    item: Callable[[Row[Any]], Any]


Filters = Mapping[str, object]
Clock = Callable[[], Any]
ConflictWording = Callable[[IntegrityError, Mapping[str, Any]], Exception]
_COLLECTIONS = (list, tuple, set, frozenset)


def _generic_conflict(exc: IntegrityError, values: Mapping[str, Any]) -> Exception:
    return Conflict("The resource conflicts with an existing one.")


class RecordRepository(Generic[R, N]):
    """One table's records: get, list (filters, ``limit``, ``after`` a marker), create,
    update, delete, as ``edgefed.api.resource.Repository`` names them.

    ``key`` is the column a record is known by (``id``); ``scoped_by`` names columns
    whose values the repository is given (``image_id`` for the members of one image):
    it reads and writes only the records that have them. ``order`` names the columns
    lists are sorted by, and paged along (the last should be unique). ``now`` stamps
    ``created_at``/``updated_at`` where the table has them, ``new_id`` fills an ``id``
    a new record leaves empty. ``on_write`` runs after every write (identity bumps its
    generation there); ``conflict`` words a unique or foreign key violation as the
    service's 409.
    """

    # Set by subclasses (class attributes: a repository is built per request, cheaply).
    table: Table
    mapper: RecordMapper[R]
    key: str = "id"
    scoped_by: tuple[str, ...] = ()
    order: tuple[str, ...] = ("created_at", "id")
    related: tuple[Related, ...] = ()

    def __init__(
        self,
        store: Store,
        *,
        scope: Mapping[str, object] | None = None,
        now: Clock = utcnow,
        new_id: Callable[[], str] = new_uuid,
        on_write: Callable[[], None] | None = None,
        conflict: ConflictWording = _generic_conflict,
    ):
        self.store = store
        self.scope = dict(scope or {})
        if set(self.scope) != set(self.scoped_by):
            raise ValueError(f"{type(self).__name__} is scoped by {self.scoped_by}")
        self.now = now
        self.new_id = new_id
        self.on_write = on_write
        self.conflict = conflict

    # -- statements, built once per class (SQLAlchemy caches their compiled form) -----

    @classmethod
    def _statements(cls) -> tuple[Select[Any], Select[Any]]:
        """Every record of the scope (in order), and one (``:id``)."""
        cached: tuple[Select[Any], Select[Any]] | None = cls.__dict__.get("_built")
        if cached is None:
            table = cls.table
            scoped = [table.c[name] == bindparam(name) for name in cls.scoped_by]
            every = select(table).where(*scoped).order_by(*(table.c[n] for n in cls.order))
            one = select(table).where(*scoped, table.c[cls.key] == bindparam("id"))
            cached = (every, one)
            cls._built = cached  # type: ignore[attr-defined]
        return cached

    def _one(self, id: str) -> ColumnElement[bool]:
        table = self.table
        return and_(table.c[self.key] == id, *(table.c[k] == v for k, v in self.scope.items()))

    # -- reads ------------------------------------------------------------------------

    async def _records(
        self, conn: AsyncConnection, query: Select[Any], params: Mapping[str, Any] | None = None
    ) -> list[R]:
        """The records of ``query``, with their ``related`` fields read in the same
        transaction."""
        result = await conn.execute(query, {**self.scope, **(params or {})})
        if not self.related:
            return self.mapper.all(result)
        rows = list(result)
        key = self.key
        extras: dict[str, dict[str, Any]] = {getattr(row, key): {} for row in rows}
        for related in self.related if rows else ():
            found: dict[str, list[Any]] = {}
            for item in await conn.execute(related.query, {"ids": list(extras)}):
                found.setdefault(getattr(item, related.key), []).append(related.item(item))
            for record_id, items in found.items():
                extras[record_id][related.field] = tuple(items)
        return [self.mapper.one(row, **extras[getattr(row, key)]) for row in rows]

    async def get(self, *, id: str) -> R | None:
        async with self.store.read() as conn:
            found = await self._records(conn, self._statements()[1], {"id": id})
        return found[0] if found else None

    async def list(
        self, *, filters: Filters | None = None, limit: int | None = None, after: str | None = None
    ) -> Sequence[R]:
        """Records matching ``filters`` (column → value; a list, tuple or set: any of
        them), in ``order``; at most ``limit``, starting after the record ``after``
        (LookupError when there is no such record)."""
        query = self._statements()[0]
        table = self.table
        for name, value in (filters or {}).items():
            column = table.c[name]
            if isinstance(value, _COLLECTIONS):
                query = query.where(column.in_(list(value)))
            elif value is None:
                query = query.where(column.is_(None))
            else:
                query = query.where(column == value)
        async with self.store.read() as conn:
            if after is not None:
                columns = [table.c[name] for name in self.order]
                marker = (await conn.execute(select(*columns).where(self._one(after)))).first()
                if marker is None:
                    raise LookupError(after)
                query = query.where(tuple_(*columns) > tuple_(*marker))
            if limit is not None:
                query = query.limit(limit)
            return await self._records(conn, query)

    # -- writes -----------------------------------------------------------------------

    def _written(self) -> None:
        if self.on_write is not None:
            self.on_write()

    def stamped(self, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` in the scope, with the id and timestamps the table has and
        ``values`` lacks."""
        values.update(self.scope)
        columns = self.table.c
        if "id" in columns and not values.get("id"):
            values["id"] = self.new_id()
        if "created_at" in columns or "updated_at" in columns:
            now = self.now()
            for name in ("created_at", "updated_at"):
                if name in columns and values.get(name) is None:
                    values[name] = now
        return values

    async def create(self, *, new: N) -> R:
        values = self.stamped(column_values(new))
        try:
            async with self.store.write() as conn:
                await conn.execute(insert(self.table).values(**values))
        except IntegrityError as exc:
            raise self.conflict(exc, values) from exc
        finally:
            self._written()
        found = await self.get(id=str(values[self.key]))
        assert found is not None
        return found

    def check_columns(self, names: Iterable[str]) -> None:
        unknown = set(names) - (set(self.table.c.keys()) - {self.key, *self.scoped_by})
        if unknown:
            raise ValueError(f"{self.table.name}: cannot set {sorted(unknown)}")

    async def update(self, *, id: str, changes: Mapping[str, Any]) -> R | None:
        """Set ``changes`` (column → value) on one record; None when it is gone."""
        self.check_columns(changes)
        values = dict(changes)
        if "updated_at" in self.table.c:
            values.setdefault("updated_at", self.now())
        try:
            async with self.store.write() as conn:
                result = await conn.execute(
                    update(self.table).where(self._one(id)).values(**values)
                )
        except IntegrityError as exc:
            raise self.conflict(exc, values) from exc
        finally:
            self._written()
        if result.rowcount == 0:
            return None
        return await self.get(id=id)

    async def delete(self, *, id: str) -> bool:
        """Delete one record; whether there was one."""
        try:
            async with self.store.write() as conn:
                result = await conn.execute(delete(self.table).where(self._one(id)))
        finally:
            self._written()
        return bool(result.rowcount)
