"""What a receiver answers per pushed item, and the checks that need no database.

Every item gets a result: ``applied``; ``duplicate`` (the version this source delivered
already) or ``stale`` (older); ``conflict`` (409: a row held here is not the source's,
recorded); or ``rejected`` with a code (400 malformed, 403 may not travel, 413 too
large, 422 a parent unknown here, retried). The envelope of an item (kind, key, version,
op) is checked before anything is read, and every message names the item, because the
source shows them to its operator.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import UniqueConstraint, select

from edgefed.store.engine import AsyncConnection
from edgefed.store.sync.conflicts import Clash
from edgefed.store.sync.kinds import KINDS, MAX_KEY_LENGTH, MAX_VERSION, Kind

APPLIED, STALE, DUPLICATE, REJECTED, CONFLICT = (
    "applied", "stale", "duplicate", "rejected", "conflict",
)  # fmt: skip
# Parent kinds with a one-column key that need nothing else to exist first and carry no
# blob: a run of their upserts is applied in bulk (receive_bulk.py).
BULK_KINDS = frozenset({"project", "role", "flavor", "user", "group"})
# Keys per IN (...) list (SQLite binds at most 999 parameters).
CHUNK = 500


def answer(item: Mapping[str, Any], status: str) -> dict[str, Any]:
    def shown(value: Any) -> str | None:
        return value[:MAX_KEY_LENGTH] if isinstance(value, str) else None

    version = item.get("version")
    return {"kind": shown(item.get("kind")), "key": shown(item.get("key")),
            "version": version if isinstance(version, int) else None,
            "status": status}  # fmt: skip


def rejection(item: Mapping[str, Any], code: int, error: str) -> dict[str, Any]:
    return {**answer(item, REJECTED), "code": code, "error": error}


def check_item(item: Mapping[str, Any]) -> str | None:
    """What is wrong with an item's envelope (kind, key, version, op), or None."""
    name = item.get("kind")
    kind = KINDS.get(name) if isinstance(name, str) else None
    if kind is None:
        return f"unknown resource kind {str(item.get('kind'))[:40]!r}"
    key = item.get("key")
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH or "\x00" in key:
        return f"a {kind.name} key is a string of 1 to {MAX_KEY_LENGTH} characters"
    try:
        kind.key_values(key)
    except ValueError as exc:
        return str(exc)
    version = item.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 0 <= version <= MAX_VERSION:
        return f"{kind.name} {key}: the version is an integer from 0 to {MAX_VERSION}"
    if item.get("op") not in ("upsert", "delete"):
        return f"{kind.name} {key}: op is upsert or delete"
    return None


def held_by(origin: str | None) -> str:
    if origin is None:
        return "is this site's own (not the source's)"
    return f"was received from sync source {origin}"


def not_travelling(kind: Kind, key_values: Mapping[str, str]) -> str:
    if kind.name == "role_assignment":
        return (
            f"a source may grant roles only on its projects, not on this site's "
            f"{key_values['target_type']} {key_values['target_id']}"
        )
    return f"a {kind.name} {kind.key_of(key_values)} is this site's own: a source may not set it"


def name_clash(
    kind: Kind, key: str, columns: tuple[str, ...], values: Mapping[str, Any],
    other: str, origin: str | None,
) -> Clash:  # fmt: skip
    shown = ", ".join(f"{c}={values[c]}" for c in columns)
    who = "this site's own" if origin is None else f"received from {origin}"
    return Clash(
        "name", kind.name, other, origin, f"{kind.name} {key}: {kind.name} {other} ({who}) "
        f"already has {shown}"
    )  # fmt: skip


async def unique_clash(
    conn: AsyncConnection, kind: Kind, values: Mapping[str, Any]
) -> Clash | None:
    """Another row (another key) holding the same unique values: a name clash."""
    for columns in unique_groups(kind):
        if not all(c in values for c in columns):
            continue
        shown = [kind.table.c[c] for c in kind.key_columns]
        if kind.has_origin:
            shown.append(kind.table.c.origin)
        query = select(*shown).where(*(kind.table.c[c] == values[c] for c in columns))
        for row in await conn.execute(query):
            found = dict(row._mapping)
            other = kind.key_of(found)
            if other != kind.key_of(values):
                return name_clash(
                    kind, kind.key_of(values), columns, values, other, found.get("origin")
                )
    return None


def bulk_eligible(item: Mapping[str, Any]) -> bool:
    kind = item.get("kind")
    return (
        isinstance(kind, str)
        and kind in BULK_KINDS
        and item.get("op") == "upsert"
        and isinstance(item.get("key"), str)
        and isinstance(item.get("row"), Mapping)
        and check_item(item) is None
    )


def chunks(values: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


def unique_groups(kind: Kind) -> list[tuple[str, ...]]:
    """Column groups that must be unique, besides the key itself."""
    groups = [
        tuple(c.name for c in con.columns)
        for con in kind.table.constraints
        if isinstance(con, UniqueConstraint)
    ]
    groups += [(c.name,) for c in kind.table.c if c.unique]
    return [g for g in groups if set(g) != set(kind.key_columns)]
