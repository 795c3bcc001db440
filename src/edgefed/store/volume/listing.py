"""Cinder's lists: filters, sort keys with their directions, and keyset paging.

``sort=name:asc,size:desc`` (or ``sort_key``/``sort_dir``) orders by any of the
columns a resource allows, then by ``id`` so that the order is total; a page starts
after the ``marker`` record in that order, whatever the directions, by comparing the
sort columns one after the other (an OR of prefixes, since a row-value comparison
only works when every direction is the same).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, exists, false, or_, select
from sqlalchemy.sql import Select

from edgefed.store.engine import AsyncConnection
from edgefed.store.volume.tables import resource_metadata

SortKeys = Sequence[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Page:
    """What a list asks: column filters (a collection matches any of its values),
    metadata every record must have, the order, and the page."""

    filters: Mapping[str, object]
    metadata: Mapping[str, str]
    sort: SortKeys
    limit: int | None = None
    marker: str | None = None
    offset: int = 0


class MarkerNotFound(LookupError):
    """The page's marker names no record of the list."""


def with_metadata(table: Table, query: Select[Any], wanted: Mapping[str, str]) -> Select[Any]:
    """Only the rows having every ``key: value`` of ``wanted`` in their metadata."""
    for key, value in wanted.items():
        query = query.where(
            exists().where(
                resource_metadata.c.resource_id == table.c.id,
                resource_metadata.c.key == key,
                resource_metadata.c.value == value,
            )
        )
    return query


def _after(columns: list[Any], directions: list[str], marker: Sequence[Any]) -> ColumnElement[bool]:
    """Rows after ``marker`` in the order of ``columns`` and ``directions``."""
    clauses: list[ColumnElement[bool]] = []
    for i, (column, direction) in enumerate(zip(columns, directions, strict=True)):
        equal = [columns[j] == marker[j] for j in range(i)]
        beyond = column > marker[i] if direction == "asc" else column < marker[i]
        clauses.append(and_(*equal, beyond))
    return or_(false(), *clauses)


async def page_of(conn: AsyncConnection, table: Table, query: Select[Any], page: Page) -> Any:
    """The rows of ``query`` (a select of ``table``) for ``page``: filtered, ordered,
    after the marker, at most ``limit``. MarkerNotFound when the marker is not among
    the rows the filters leave."""
    query = with_metadata(table, query.where(*_where(table, page.filters)), page.metadata)
    keys = [(k, d) for k, d in page.sort if k != "id"]
    id_direction = next((d for k, d in page.sort if k == "id"), keys[-1][1] if keys else "desc")
    keys.append(("id", id_direction))
    columns = [table.c[k] for k, _ in keys]
    directions = [d for _, d in keys]
    if page.marker is not None:
        marker = (
            await conn.execute(
                with_metadata(table, select(*columns), page.metadata).where(
                    table.c.id == page.marker, *_where(table, page.filters)
                )
            )
        ).first()
        if marker is None:
            raise MarkerNotFound(page.marker)
        query = query.where(_after(columns, directions, tuple(marker)))
    query = query.order_by(
        *(c.asc() if d == "asc" else c.desc() for c, d in zip(columns, directions, strict=True))
    )
    if page.offset:
        query = query.offset(page.offset)
    if page.limit is not None:
        query = query.limit(page.limit)
    return await conn.execute(query)


def _where(table: Table, filters: Mapping[str, object]) -> list[ColumnElement[bool]]:
    found: list[ColumnElement[bool]] = []
    for name, value in filters.items():
        column = table.c[name]
        if isinstance(value, list | tuple | set | frozenset):
            found.append(column.in_(list(value)))
        elif value is None:
            found.append(column.is_(None))
        else:
            found.append(column == value)
    return found
