"""A run of plain upserts of one parent kind, applied with a few statements.

A first sync of 10,000 projects would cost seven statements per project applied one by
one (receive_item.py). A run of upserts of a kind that needs nothing else first
(``BULK_KINDS``) is judged with the same checks (row shape, owner, unique names, held
version), but each read covers the whole run, and the rows are written in batches:
a few dozen statements per push.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, insert, select, update

from edgefed.store.sync.codec import decode_row
from edgefed.store.sync.conflicts import Clash
from edgefed.store.sync.kinds import KINDS, Kind
from edgefed.store.sync.marks import upsert_marks
from edgefed.store.sync.receive_checks import (
    APPLIED,
    DUPLICATE,
    STALE,
    answer,
    chunks,
    held_by,
    name_clash,
    rejection,
    unique_groups,
)
from edgefed.store.sync.receive_item import ItemRun, Revocation, upsert_applied
from edgefed.store.sync.tables import applied

# A candidate for writing: (its index in the run, the item, its decoded values).
Candidate = tuple[int, Mapping[str, Any], dict[str, Any]]


async def apply_bulk(run: ItemRun, items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Apply ``items``, upserts of one kind in ``BULK_KINDS``; a result per item, in order."""
    kind = KINDS[str(items[0]["kind"])]
    keys = [str(i["key"]) for i in items]
    if len(set(keys)) != len(keys):
        return [await run.one(i) for i in items]
    held, existing = await _held(run, kind, keys)
    results: dict[int, dict[str, Any]] = {}
    candidates: list[Candidate] = []
    for n, item in enumerate(items):
        key, version = keys[n], int(item["version"])
        try:
            values = decode_row(kind, item["row"])
        except (ValueError, TypeError) as exc:
            results[n] = rejection(item, 400, f"{kind.name} {key}: {exc}")
            continue
        if kind.key_of(values) != key:
            results[n] = rejection(
                item, 400, f"{kind.name} {key}: the row's key is {kind.key_of(values)}"
            )
            continue
        targets = run.targets(item)
        if isinstance(targets, dict):
            results[n] = targets
            continue
        if key in existing and existing[key][0] != run.source:
            origin = existing[key][0]
            clash = Clash("id", kind.name, key, origin, f"{kind.name} {key} {held_by(origin)}")
            results[n] = await run.conflict(item, kind, key, clash)
            continue
        if key in held and version <= held[key]:
            results[n] = answer(item, STALE if version < held[key] else DUPLICATE)
            continue
        if targets:
            values = {**values, "__targets": targets}
        candidates.append((n, item, values))
    candidates = await _without_name_clashes(run, kind, keys, candidates, results)
    await _write(run, kind, keys, candidates, existing)
    for n, item, _ in candidates:
        results[n] = answer(item, APPLIED)
    return [results[n] for n in range(len(items))]


async def _held(
    run: ItemRun, kind: Kind, keys: Sequence[str]
) -> tuple[dict[str, int], dict[str, tuple[str | None, bool]]]:
    """The versions this source delivered of ``keys``, and the rows held here:
    key -> (origin, enabled)."""
    key_col = kind.table.c[kind.key_columns[0]]
    held: dict[str, int] = {}
    existing: dict[str, tuple[str | None, bool]] = {}
    enabled = kind.table.c.enabled if kind.name == "user" else None
    for chunk in chunks(keys):
        query = select(applied.c.key, applied.c.version).where(
            applied.c.kind == kind.name,
            applied.c.key.in_(chunk),
            applied.c.source == run.source,
        )
        held.update({str(k): int(v) for k, v in await run.conn.execute(query)})
        selected = [key_col, kind.table.c.origin]
        if enabled is not None:
            selected.append(enabled)
        for found in await run.conn.execute(select(*selected).where(key_col.in_(chunk))):
            existing[str(found[0])] = (
                found[1],
                bool(found[2]) if enabled is not None else True,
            )
    return held, existing


async def _without_name_clashes(
    run: ItemRun,
    kind: Kind,
    keys: Sequence[str],
    candidates: list[Candidate],
    results: dict[int, dict[str, Any]],
) -> list[Candidate]:
    """The candidates whose unique values no other row holds (here, or earlier in the
    run); the others are answered as conflicts in ``results``.

    Judged in order, as one by one would: a row of the run that moves to new values
    frees the ones it held for the rows after it (a rename on its way at the source).
    """
    key_col = kind.table.c[kind.key_columns[0]]
    for columns in unique_groups(kind):
        taken: dict[tuple[Any, ...], tuple[str, str | None]] = {}
        held_by: dict[str, tuple[Any, ...]] = {}  # key -> the values its row holds here
        wanted = [
            tuple(v[c] for c in columns) for _, _, v in candidates if all(c in v for c in columns)
        ]
        firsts = sorted({w[0] for w in wanted}, key=str)
        for chunk in chunks(firsts):
            query = select(key_col, kind.table.c.origin, *(kind.table.c[c] for c in columns)).where(
                kind.table.c[columns[0]].in_(chunk)
            )
            for found_row in await run.conn.execute(query):
                taken[tuple(found_row[2:])] = (str(found_row[0]), found_row[1])
                held_by[str(found_row[0])] = tuple(found_row[2:])
        kept = []
        for n, item, values in candidates:
            if all(c in values for c in columns):
                unique_values = tuple(values[c] for c in columns)
                other = taken.get(unique_values)
                if other is not None and other[0] != keys[n]:
                    clash = name_clash(kind, keys[n], columns, values, other[0], other[1])
                    results[n] = await run.conflict(item, kind, keys[n], clash)
                    continue
                before = held_by.get(keys[n])
                if before is not None and before != unique_values:
                    if taken.get(before, ("", None))[0] == keys[n]:
                        del taken[before]
                taken[unique_values] = (keys[n], run.source)
            kept.append((n, item, values))
        candidates = kept
    return candidates


async def _write(
    run: ItemRun,
    kind: Kind,
    keys: Sequence[str],
    candidates: list[Candidate],
    existing: Mapping[str, tuple[str | None, bool]],
) -> None:
    """Insert or update the candidates' rows, their marks and versions, a statement per
    shape of row."""
    conn = run.conn
    key_col = kind.table.c[kind.key_columns[0]]
    inserts: dict[frozenset[str], list[dict[str, Any]]] = {}
    updates: dict[frozenset[str], list[dict[str, Any]]] = {}
    marked: list[dict[str, Any]] = []
    for n, _item, values in candidates:
        targets = values.pop("__targets", None)
        if targets:
            marked.append({"kind": kind.name, "key": keys[n], "targets": targets,
                           "origin": run.source, "created_at": run.now})  # fmt: skip
        row = {**values, "origin": run.source}
        if keys[n] in existing:
            if kind.name == "user" and existing[keys[n]][1] and values.get("enabled") is False:
                run.revocations.append(Revocation(keys[n]))
            changes = {f"v_{c}": v for c, v in row.items() if c not in kind.key_columns}
            updates.setdefault(frozenset(changes), []).append({"k_key": keys[n], **changes})
        else:
            inserts.setdefault(frozenset(row), []).append(row)
    # Updates first: a row renamed frees its old name for a new row of the same run.
    for columns_set, rows in updates.items():
        stmt = (
            update(kind.table)
            .where(key_col == bindparam("k_key"))
            .values({c[2:]: bindparam(c) for c in columns_set})
        )
        await conn.execute(stmt, rows)
    for rows in inserts.values():
        await conn.execute(insert(kind.table), rows)
    if marked:
        await conn.execute(upsert_marks(conn), marked)
    if candidates:
        await conn.execute(
            upsert_applied(conn),
            [{"kind": kind.name, "key": keys[n], "source": run.source,
              "version": int(i["version"])} for n, i, _ in candidates],
        )  # fmt: skip
        await run.settled(kind.name, [keys[n] for n, _, _ in candidates], version=None)
