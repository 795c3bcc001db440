"""What can be synchronised, and how a row travels: kinds, keys, wire codec, receiver upserts.

A *kind* names one table of another service (projects, users, role assignments,
flavors, quotas, images, …) with the columns that identify a row on every site (its
*key*: the primary key, except keypairs whose local integer id differs per site), the
kinds it depends on (a role assignment needs its user and project first) and the
delivery *rank* that puts parents before children.

Rows travel as plain JSON: every column but ``origin`` and per-site ids, datetimes in
ISO 8601. The receiver writes them back with ``origin`` = the source, which is what
makes the owners' repositories refuse local edits (``Locked``). Applying bypasses the
owners' write paths on purpose: it must not be refused by the very lock it sets, and
it must be one transaction with the receiver's version bookkeeping. Because it bypasses
them, ``decode_row`` checks every value against its column (type, length, range) the
way the database would, so that a source's malformed row is a 400 for that item and
never a database error.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    Integer,
    String,
    Table,
    and_,
    delete,
    insert,
    select,
    update,
)

from edgefed.store import compute, identity, image
from edgefed.store.engine import AsyncConnection
from edgefed.store.schema import UtcDateTime

KEY_SEPARATOR = "|"
Ref = tuple[str, str]  # (kind, key)
MAX_KEY_LENGTH = 512
MAX_VERSION = 2**63 - 1
SHA256_RE = re.compile(r"[0-9a-f]{64}")
# How deep a JSON document of a row may nest (extra specs, properties, tags).
MAX_JSON_DEPTH = 32


def valid_sha256(value: object) -> bool:
    """Exactly 64 lowercase hex digits: the only blob name that may become a path.

    A sha256 that arrives from another site (a pushed image row, a fetch record, a blob
    path) names a file under ``images/``; anything else (``../keys/signing.pem``) would
    let a source make this site read or serve a file of its data directory."""
    return isinstance(value, str) and SHA256_RE.fullmatch(value) is not None


@dataclass(frozen=True)
class Kind:
    name: str
    table: Table
    key_columns: tuple[str, ...]
    rank: int
    # Parents whose marks decide where a child goes: key values -> [(kind, key)].
    owners: Callable[[Mapping[str, str]], list[Ref]] = field(default=lambda _k: [])
    # What must exist at the receiver before the row is accepted: [(kind, key, what)].
    requires: Callable[[Mapping[str, Any]], list[tuple[str, str, str]]] = field(
        default=lambda _r: []
    )
    # Columns that are per site and never travel (a local autoincrement id).
    local_columns: tuple[str, ...] = ()
    # Whether a row of this key may travel at all: a source grants roles on its own
    # projects and sets quotas of its own projects, never on the receiver's domains,
    # system or quota classes (those are the receiver's own authority).
    travels: Callable[[Mapping[str, str]], bool] = field(default=lambda _k: True)

    def key_of(self, values: Mapping[str, Any]) -> str:
        return KEY_SEPARATOR.join(str(values[c]) for c in self.key_columns)

    def key_values(self, key: str) -> dict[str, str]:
        parts = key.split(KEY_SEPARATOR)
        if len(parts) != len(self.key_columns):
            raise ValueError(
                f"a {self.name} key has {len(self.key_columns)} parts "
                f"({KEY_SEPARATOR.join(self.key_columns)}), got {key!r}"
            )
        return dict(zip(self.key_columns, parts, strict=True))

    @property
    def has_origin(self) -> bool:
        return "origin" in self.table.c


def _assignment_owners(k: Mapping[str, str]) -> list[Ref]:
    refs: list[Ref] = []
    if k["actor_type"] in ("user", "group"):
        refs.append((k["actor_type"], k["actor_id"]))
    if k["target_type"] == "project":
        refs.append(("project", k["target_id"]))
    return refs


def _assignment_requires(r: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    need = [("role", str(r["role_id"]), "role")]
    if r["actor_type"] in ("user", "group"):
        need.append((str(r["actor_type"]), str(r["actor_id"]), str(r["actor_type"])))
    if r["target_type"] == "project":
        need.append(("project", str(r["target_id"]), "project"))
    return need


def _assignment_travels(k: Mapping[str, str]) -> bool:
    return k["actor_type"] in ("user", "group") and k["target_type"] == "project"


def _quota_owners(k: Mapping[str, str]) -> list[Ref]:
    return [("project", k["owner"])] if k["kind"] == "project" else []


def _quota_requires(r: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    return [("project", str(r["owner"]), "project")] if r["kind"] == "project" else []


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("project", identity.projects, ("id",), 0),
        Kind("role", identity.roles, ("id",), 0),
        Kind("flavor", compute.flavors, ("id",), 0),
        Kind("image", image.images, ("id",), 0),
        Kind("user", identity.users, ("id",), 1),
        Kind("group", identity.groups, ("id",), 1),
        Kind(
            "flavor_access",
            compute.flavor_access,
            ("flavor_id", "project_id"),
            1,
            owners=lambda k: [("flavor", k["flavor_id"])],
            requires=lambda r: [("flavor", str(r["flavor_id"]), "flavor")],
        ),
        Kind(
            "quota",
            compute.quotas,
            ("kind", "owner", "resource"),
            1,
            owners=_quota_owners,
            requires=_quota_requires,
            travels=lambda k: k["kind"] == "project",
        ),
        Kind(
            "group_member",
            identity.group_members,
            ("group_id", "user_id"),
            2,
            owners=lambda k: [("group", k["group_id"]), ("user", k["user_id"])],
            requires=lambda r: [
                ("group", str(r["group_id"]), "group"),
                ("user", str(r["user_id"]), "user"),
            ],
        ),
        Kind(
            "role_assignment",
            identity.assignments,
            ("actor_type", "actor_id", "target_type", "target_id", "role_id"),
            2,
            owners=_assignment_owners,
            requires=_assignment_requires,
            travels=_assignment_travels,
        ),
        Kind(
            "keypair",
            compute.keypairs,
            ("user_id", "name"),
            2,
            owners=lambda k: [("user", k["user_id"])],
            requires=lambda r: [("user", str(r["user_id"]), "user")],
            local_columns=("id",),
        ),
    )
}

# Which child kinds hang under a parent kind, and by which key column.
CHILDREN: dict[str, list[tuple[str, dict[str, str]]]] = {
    "project": [
        ("quota", {"kind": "project", "owner": "{key}"}),
        ("role_assignment", {"target_type": "project", "target_id": "{key}"}),
    ],
    "user": [
        ("group_member", {"user_id": "{key}"}),
        ("role_assignment", {"actor_type": "user", "actor_id": "{key}"}),
        ("keypair", {"user_id": "{key}"}),
    ],
    "group": [
        ("group_member", {"group_id": "{key}"}),
        ("role_assignment", {"actor_type": "group", "actor_id": "{key}"}),
    ],
    "flavor": [("flavor_access", {"flavor_id": "{key}"})],
}


def kind_named(name: str) -> Kind:
    kind = KINDS.get(name)
    if kind is None:
        raise KeyError(name)
    return kind


# ---- wire codec -------------------------------------------------------------------------


def encode_row(kind: Kind, row: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for column in kind.table.c:
        if column.name == "origin" or column.name in kind.local_columns:
            continue
        value = row[column.name]
        if isinstance(value, dt.datetime):
            value = value.isoformat()
        out[str(column.name)] = value
    return out


def decode_row(kind: Kind, doc: Mapping[str, Any]) -> dict[str, Any]:
    """The column values of ``doc``; ValueError names a missing or malformed column.

    Every value is checked against its column as the database would (type, length,
    integer range, no NUL character), so a malformed row from a source is refused by
    name instead of failing the transaction."""
    values: dict[str, Any] = {}
    for name, optional, nullable, check in _decoders(kind):
        if name not in doc:
            if optional:
                continue
            raise ValueError(f"{kind.name} row lacks column {name!r}")
        value = doc[name]
        if value is None:
            if not nullable:
                raise ValueError(f"{kind.name}.{name} may not be null")
        else:
            try:
                value = check(value)
            except ValueError as exc:
                raise ValueError(f"{kind.name}.{name} {exc}") from None
        values[name] = value
    for name in kind.key_columns:
        if values.get(name) in (None, ""):
            raise ValueError(f"{kind.name} row lacks its key column {name!r}")
        if KEY_SEPARATOR in str(values[name]):
            raise ValueError(f"{kind.name}.{name} may not contain {KEY_SEPARATOR!r}")
    return values


Decoder = tuple[str, bool, bool, Callable[[Any], Any]]  # name, optional, nullable, check
_DECODERS: dict[str, list[Decoder]] = {}


def _decoders(kind: Kind) -> list[Decoder]:
    """Per column that travels: its check, chosen once per kind (a first sync decodes
    tens of thousands of rows)."""
    found = _DECODERS.get(kind.name)
    if found is None:
        found = _DECODERS[kind.name] = [
            (str(c.name), bool(c.nullable or c.default is not None), bool(c.nullable),
             _checker(c.type))
            for c in kind.table.c
            if c.name != "origin" and c.name not in kind.local_columns
        ]  # fmt: skip
    return found


def _checker(type_: Any) -> Callable[[Any], Any]:
    """A check of a (non-null) value for column type ``type_``: the value as stored, or
    ValueError saying what is wrong (the caller names the column)."""
    if isinstance(type_, UtcDateTime):
        return _check_datetime
    if isinstance(type_, Boolean):
        return _check_bool
    if isinstance(type_, Integer):
        bits = 63 if isinstance(type_, BigInteger) else 31
        low, high = -(2**bits), 2**bits

        def check_int(value: Any) -> Any:
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError("must be an integer")
            if not low <= value < high:
                raise ValueError("is out of range")
            return value

        return check_int
    if isinstance(type_, Float):
        return _check_float
    if isinstance(type_, String):  # Text too
        length = type_.length

        def check_str(value: Any) -> Any:
            if not isinstance(value, str):
                raise ValueError("must be a string")
            if length is not None and len(value) > length:
                raise ValueError(f"is longer than {length} characters")
            if "\x00" in value:
                raise ValueError("may not contain a NUL character")
            return value

        return check_str
    if isinstance(type_, JSON):
        return _check_document
    raise TypeError(f"a column of type {type_!r} cannot be received")


def _check_datetime(value: Any) -> Any:
    if not isinstance(value, str) or "\x00" in value:
        raise ValueError("must be an ISO 8601 string")
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"is not an ISO 8601 date and time: {exc}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _check_bool(value: Any) -> Any:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _check_float(value: Any) -> Any:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError("must be a number")
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("must be finite")
    return value


def _check_document(value: Any) -> Any:
    _check_json(value, depth=0)
    return value


def _check_json(value: Any, *, depth: int) -> None:
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"nests deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("may not contain a NUL character")
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_json(k, depth=depth + 1)
            _check_json(v, depth=depth + 1)
    elif isinstance(value, list):
        for v in value:
            _check_json(v, depth=depth + 1)
    elif isinstance(value, float) and value != value:
        raise ValueError("holds a number that is not finite")


# ---- reading rows at the source ---------------------------------------------------------


def _where_key(kind: Kind, key_values: Mapping[str, Any]) -> Any:
    return and_(*(kind.table.c[c] == key_values[c] for c in kind.key_columns))


async def read_row(conn: AsyncConnection, kind: Kind, key: str) -> dict[str, Any] | None:
    row = (
        await conn.execute(select(kind.table).where(_where_key(kind, kind.key_values(key))))
    ).first()
    return None if row is None else dict(row._mapping)


async def all_keys(conn: AsyncConnection, kind: Kind) -> list[str]:
    columns = [kind.table.c[c] for c in kind.key_columns]
    return [kind.key_of(dict(r._mapping)) for r in await conn.execute(select(*columns))]


CHILD_QUERY_CHUNK = 500


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


# ---- applying rows at the receiver -------------------------------------------------------


async def exists(conn: AsyncConnection, kind_name: str, key: str) -> bool:
    kind = KINDS[kind_name]
    where = _where_key(kind, kind.key_values(key))
    return (
        await conn.execute(select(kind.table.c[kind.key_columns[0]]).where(where))
    ).first() is not None


async def current_origin(conn: AsyncConnection, kind: Kind, key: str) -> tuple[bool, str | None]:
    """(the row exists, its origin)."""
    if not kind.has_origin:
        found = await exists(conn, kind.name, key)
        return found, None
    row = (
        await conn.execute(
            select(kind.table.c.origin).where(_where_key(kind, kind.key_values(key)))
        )
    ).first()
    return (row is not None, None if row is None else row[0])


async def upsert_row(
    conn: AsyncConnection, kind: Kind, values: Mapping[str, Any], *, origin: str
) -> None:
    row = dict(values)
    if kind.has_origin:
        row["origin"] = origin
    where = _where_key(kind, row)
    found = (await conn.execute(select(kind.table.c[kind.key_columns[0]]).where(where))).first()
    if found is None:
        await conn.execute(insert(kind.table).values(**row))
    else:
        changes = {k: v for k, v in row.items() if k not in kind.key_columns}
        if changes:
            await conn.execute(update(kind.table).where(where).values(**changes))


async def delete_row(conn: AsyncConnection, kind: Kind, key: str) -> bool:
    result = await conn.execute(delete(kind.table).where(_where_key(kind, kind.key_values(key))))
    return bool(result.rowcount)
