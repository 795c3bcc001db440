"""What every Cinder resource shares: the dialect, its sentences, its timestamps, the
readers of request attributes and the checks of list parameters.

Cinder's refusals are ``Invalid input received: …`` (a value), ``Invalid volume: …`` (a
state), 404 ``… could not be found.``, and 413 with ``Retry-After: 0`` over a quota; the
fault shape (``{"badRequest": {"code", "message"}}``) is api/faults.py's for /volume.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from starlette.datastructures import QueryParams

from edgefed.api.bodies import BodyWording
from edgefed.api.resource import Call, Dialect
from edgefed.core.errors import BadRequest, PayloadTooLarge
from edgefed.services.volume.microversion import Version, version_of
from edgefed.store.volume import OverLimit

CINDER = Dialect(
    body=BodyWording(
        empty="Malformed request body: the body is empty.",
        malformed="Malformed request body: the body is not valid JSON.",
        not_object="Invalid input for field/attribute {key}. '{key}' is a required property.",
    ),
    not_found="{title} {id} could not be found.",
    forbidden="Policy doesn't allow {rule} to be performed ({why}).",
    locked="{title} {id} is managed by sync source {origin}; change it there.",
    update_method="PUT",
)
# The one availability zone of a site.
ZONE = "nova"
# Limits of Cinder's API schemas.
NAME_MAX = 255
METADATA_ITEM_MAX = 255


def stamp(value: dt.datetime | None) -> str | None:
    """Cinder's timestamps: UTC, microseconds, no zone."""
    if value is None:
        return None
    return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


def version(call: Call) -> Version:
    return version_of(call.request)


def invalid_input(reason: str) -> BadRequest:
    return BadRequest(f"Invalid input received: {reason}")


def invalid_volume(reason: str) -> BadRequest:
    return BadRequest(f"Invalid volume: {reason}")


def invalid_field(name: str, value: Any, why: str) -> BadRequest:
    """Cinder's JSON-schema refusal, naming the attribute."""
    return BadRequest(f"Invalid input for field/attribute {name}. Value: {value}. {why}")


def over_limit(exc: OverLimit, *, what: str) -> PayloadTooLarge:
    """Cinder's 413 for a quota: ``what`` is ``volumes`` or ``snapshots``."""
    if exc.resource.startswith("gigabytes"):
        message = (
            f"Requested volume or snapshot exceeds allowed {exc.resource} quota. Requested "
            f"{exc.requested}G, quota is {exc.limit}G and {exc.used}G has been consumed."
        )
    elif what == "snapshots":
        message = f"Maximum number of snapshots allowed ({exc.limit}) exceeded"
    else:
        message = (
            f"Maximum number of volumes allowed ({exc.limit}) exceeded for quota '{exc.resource}'."
        )
    return PayloadTooLarge(message, headers={"Retry-After": "0"})


# -- request attributes ------------------------------------------------------------------


def optional_text(data: Mapping[str, Any], key: str, *, max_len: int = NAME_MAX) -> str | None:
    """A string attribute that may be null; NUL refused (no database stores it)."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid_field(key, value, f"{value!r} is not of type 'string', 'null'")
    if len(value) > max_len:
        raise invalid_field(key, value, f"{value!r} is too long")
    if "\x00" in value:
        raise invalid_field(key, value.replace("\x00", "\\x00"), "NUL is not allowed")
    return value


def server_id(data: Mapping[str, Any], key: str) -> str | None:
    """A server's id: a UUID (with or without dashes), or null."""
    value = optional_text(data, key)
    if value is None:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError as exc:
        raise invalid_field(key, value, f"{value!r} is not a 'uuid'") from exc


def connector_field(connector: Mapping[str, Any], key: str) -> str | None:
    """A string a connector carries (``host``, ``mountpoint``), at most 255 characters."""
    return optional_text(connector, key)


def boolean(value: Any, name: str) -> bool:
    """A boolean as Cinder reads one: true/false, or their strings (``"True"``, ``"1"``…)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes", "on", "t", "y"):
            return True
        if lowered in ("false", "0", "no", "off", "f", "n"):
            return False
    raise invalid_input(f"{name} must be a boolean, got {value!r}.")


def positive_size(value: Any, name: str = "size") -> int:
    """A size in GiB: an integer (or its string) above zero."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().lstrip("+").isdigit():
        number = int(value)
    if number is None or number <= 0:
        raise invalid_input(
            f"Invalid volume size provided for create request: {value} ({name} argument "
            "must be an integer (or string representation of an integer) and greater than "
            "zero)."
        )
    if number > 2**31 - 1:
        raise invalid_field(name, value, f"{value} is greater than the maximum of 2147483647")
    return number


def metadata_items(value: Any, name: str = "metadata") -> dict[str, str]:
    """A metadata object: keys of 1 to 255 characters, values strings of at most 255."""
    if not isinstance(value, dict):
        raise invalid_field(name, value, f"{value!r} is not of type 'object'")
    for key, item in value.items():
        if not key or len(key) > METADATA_ITEM_MAX or "\x00" in key:
            raise invalid_field(name, value, f"{key!r} is not a valid metadata key")
        if not isinstance(item, str):
            raise invalid_field(f"{name}/{key}", item, f"{item!r} is not of type 'string'")
        if len(item) > METADATA_ITEM_MAX or "\x00" in item:
            raise invalid_field(f"{name}/{key}", item, f"{item!r} is too long")
    return dict(value)


def known_only(data: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    """Cinder's schemas have ``additionalProperties: false``."""
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise BadRequest(
            f"Invalid input for field/attribute {where}. Value: {dict(data)}. Additional "
            f"properties are not allowed ({', '.join(repr(u) for u in unknown)} "
            f"{'was' if len(unknown) == 1 else 'were'} unexpected)"
        )


# -- list parameters ---------------------------------------------------------------------


def sort_keys(params: QueryParams, allowed: Iterable[str]) -> list[tuple[str, str]]:
    """``sort=k1:dir,k2`` or ``sort_key``/``sort_dir`` (not both); by default newest
    first, as Cinder lists."""
    allowed = set(allowed)
    sort, key, direction = params.get("sort"), params.get("sort_key"), params.get("sort_dir")
    if sort and (key or direction):
        raise invalid_input(
            "The 'sort_key' and 'sort_dir' parameters are deprecated and cannot be used "
            "with the 'sort' parameter."
        )
    pairs: list[tuple[str, str]] = []
    if sort:
        for item in sort.split(","):
            name, _, way = item.strip().partition(":")
            pairs.append((name.strip(), (way or "desc").strip().lower()))
    elif key or direction:
        pairs.append(((key or "created_at").strip(), (direction or "desc").strip().lower()))
    else:
        pairs.append(("created_at", "desc"))
    for name, way in pairs:
        if way not in ("asc", "desc"):
            raise invalid_input("Unknown sort direction, must be 'desc' or 'asc'")
        if name not in allowed:
            raise invalid_input(f"Invalid sort key {name}.")
    return pairs


def limit_of(params: QueryParams) -> int | None:
    raw = params.get("limit")
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError as exc:
        raise invalid_input("limit param must be an integer") from exc
    if value < 0:
        raise invalid_input("limit param must be positive")
    return min(value, 2**31 - 1)


def all_tenants(call: Call) -> bool:
    """Whether an admin asks for every project's records (``all_tenants=1``)."""
    raw = call.query.get("all_tenants") or call.query.get("all_projects")
    if raw is None or not call.principal.is_admin:
        return False
    return raw == "" or boolean(raw, "all_tenants")
