"""Rows of the synchronisable tables, by kind and key: read at a source, written at a receiver.

The functions take the connection of a block the caller holds (the receiver applies a
whole push in one transaction); ``SyncRows`` opens its own read blocks, for the engine
above the store, which never holds a connection (a source reads rows to push them, lists
keys for a full sync, and follows parents to their children).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import and_, delete, insert, select, update

from edgefed.store.engine import AsyncConnection, Store
from edgefed.store.sync.codec import encode_row
from edgefed.store.sync.kinds import CHILDREN, KINDS, Kind, Ref

CHILD_QUERY_CHUNK = 500


class SyncRows:
    """The source's view of the rows it synchronises, each call one read block."""

    def __init__(self, store: Store):
        self.store = store

    async def encoded_rows(self, refs: Iterable[Ref]) -> dict[Ref, dict[str, Any] | None]:
        """Each resource's current row as it travels (None: it is gone), in one read."""
        out: dict[Ref, dict[str, Any] | None] = {}
        async with self.store.read() as conn:
            for kind_name, key in refs:
                kind = KINDS[kind_name]
                row = await read_row(conn, kind, key)
                out[(kind_name, key)] = None if row is None else encode_row(kind, row)
        return out

    async def keys_of(self, kind_name: str) -> list[str]:
        """Every key of a kind held here (a mark on ``*``)."""
        async with self.store.read() as conn:
            return await all_keys(conn, KINDS[kind_name])

    async def existing(self, refs: Iterable[Ref]) -> list[Ref]:
        """The resources of ``refs`` held here, in order; a malformed key is not held."""
        found: list[Ref] = []
        async with self.store.read() as conn:
            for kind_name, key in refs:
                try:
                    if await exists(conn, kind_name, key):
                        found.append((kind_name, key))
                except ValueError:
                    continue
        return found

    async def children(self, parents: Mapping[str, Sequence[str]]) -> list[Ref]:
        """The children of many parents (kind -> keys), a query per child kind and chunk."""
        refs: list[Ref] = []
        async with self.store.read() as conn:
            for parent_kind, keys in parents.items():
                refs += await children_of(conn, parent_kind, keys)
        return refs


def where_key(kind: Kind, key_values: Mapping[str, Any]) -> Any:
    return and_(*(kind.table.c[c] == key_values[c] for c in kind.key_columns))


async def read_row(conn: AsyncConnection, kind: Kind, key: str) -> dict[str, Any] | None:
    row = (
        await conn.execute(select(kind.table).where(where_key(kind, kind.key_values(key))))
    ).first()
    return None if row is None else dict(row._mapping)


async def all_keys(conn: AsyncConnection, kind: Kind) -> list[str]:
    columns = [kind.table.c[c] for c in kind.key_columns]
    return [kind.key_of(dict(r._mapping)) for r in await conn.execute(select(*columns))]


async def children_of(
    conn: AsyncConnection, parent_kind: str, parent_keys: Sequence[str]
) -> list[Ref]:
    """The children of many parents of one kind: one query per child kind and chunk.

    A full sync of 10,000 projects would otherwise cost 20,000 round trips to the
    database (one per project and child kind).
    """
    refs: list[Ref] = []
    for child_name, pattern in CHILDREN.get(parent_kind, []):
        child = KINDS[child_name]
        fixed = [child.table.c[c] == v for c, v in pattern.items() if v != "{key}"]
        (by,) = (child.table.c[c] for c, v in pattern.items() if v == "{key}")
        columns = [child.table.c[c] for c in child.key_columns]
        for i in range(0, len(parent_keys), CHILD_QUERY_CHUNK):
            chunk = list(parent_keys[i : i + CHILD_QUERY_CHUNK])
            query = select(*columns).where(by.in_(chunk), *fixed)
            for r in await conn.execute(query):
                refs.append((child_name, child.key_of(dict(r._mapping))))
    return refs


# ---- at the receiver, inside its transaction ----------------------------------------------


async def exists(conn: AsyncConnection, kind_name: str, key: str) -> bool:
    kind = KINDS[kind_name]
    where = where_key(kind, kind.key_values(key))
    return (
        await conn.execute(select(kind.table.c[kind.key_columns[0]]).where(where))
    ).first() is not None


async def current_origin(conn: AsyncConnection, kind: Kind, key: str) -> tuple[bool, str | None]:
    """(the row exists, its origin)."""
    if not kind.has_origin:
        found = await exists(conn, kind.name, key)
        return found, None
    row = (
        await conn.execute(select(kind.table.c.origin).where(where_key(kind, kind.key_values(key))))
    ).first()
    return (row is not None, None if row is None else row[0])


async def upsert_row(
    conn: AsyncConnection, kind: Kind, values: Mapping[str, Any], *, origin: str
) -> None:
    row = dict(values)
    if kind.has_origin:
        row["origin"] = origin
    where = where_key(kind, row)
    found = (await conn.execute(select(kind.table.c[kind.key_columns[0]]).where(where))).first()
    if found is None:
        await conn.execute(insert(kind.table).values(**row))
    else:
        changes = {k: v for k, v in row.items() if k not in kind.key_columns}
        if changes:
            await conn.execute(update(kind.table).where(where).values(**changes))


async def delete_row(conn: AsyncConnection, kind: Kind, key: str) -> bool:
    result = await conn.execute(delete(kind.table).where(where_key(kind, kind.key_values(key))))
    return bool(result.rowcount)
