"""How a row travels: the wire codec of synchronised rows.

Rows travel as plain JSON: every column but ``origin`` and per-site ids, datetimes in
ISO 8601. The receiver writes them back with ``origin`` = the source, which is what
makes the owners' repositories refuse local edits (``Locked``). Applying bypasses the
owners' write paths on purpose (receiver.py), so ``decode_row`` checks every value
against its column (type, length, range) the way the database would: a source's
malformed row is a 400 for that item and never a database error.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, Integer, String

from edgefed.store.schema import UtcDateTime
from edgefed.store.sync.kinds import KEY_SEPARATOR, Kind

# How deep a JSON document of a row may nest (extra specs, properties, tags).
MAX_JSON_DEPTH = 32


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
