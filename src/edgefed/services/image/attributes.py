"""Glance's image attributes: which exist, which are read-only, what values they take.

Create (POST) and update (PATCH) share these rules, so both refuse the same inputs
with the same messages. Anything that is not a base attribute is an extra property,
whose value Glance's schema requires to be a string.
"""

from __future__ import annotations

import uuid
from typing import Any

from edgefed.core.errors import Forbidden, ValidationFailed

DISK_FORMATS = ("ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop")
CONTAINER_FORMATS = ("ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed")
VISIBILITIES = ("public", "community", "shared", "private")
MEMBER_STATUSES = ("pending", "accepted", "rejected")

# Attributes the server computes: a client may never set them.
READ_ONLY = frozenset(
    {
        "status",
        "checksum",
        "os_hash_algo",
        "os_hash_value",
        "size",
        "virtual_size",
        "created_at",
        "updated_at",
        "file",
        "self",
        "schema",
        "direct_url",
        "locations",
        "stores",
        "deleted",
        "deleted_at",
    }
)
# Attributes with a column of their own (settable, with a type).
BASE = frozenset(
    {
        "name",
        "disk_format",
        "container_format",
        "visibility",
        "min_disk",
        "min_ram",
        "protected",
        "os_hidden",
        "tags",
        "owner",
    }
)
MAX_TAGS = 128
MAX_STRING = 255


def refuse_read_only(name: str) -> None:
    if name in READ_ONLY or name == "id":
        raise Forbidden(f"Attribute '{name}' is read-only.")


def validate_id(value: Any) -> str:
    if not isinstance(value, str):
        raise ValidationFailed(f"Invalid id {value!r}: not a string", field="id")
    try:
        return str(uuid.UUID(value))
    except ValueError as exc:
        raise ValidationFailed(f"Invalid id {value!r}: not a UUID", field="id") from exc


def validate_tag(tag: Any) -> str:
    if not isinstance(tag, str) or not tag:
        raise ValidationFailed(f"Invalid tag {tag!r}: tags are non-empty strings", field="tags")
    if len(tag) > MAX_STRING:
        raise ValidationFailed(f"Tag is longer than {MAX_STRING} characters", field="tags")
    return tag


def validate_tags(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ValidationFailed(f"{value!r} is not of type 'array'", field="tags")
    tags = list(dict.fromkeys(validate_tag(t) for t in value))
    if len(tags) > MAX_TAGS:
        raise ValidationFailed(f"An image may have at most {MAX_TAGS} tags", field="tags")
    return tags


def _enum(name: str, value: Any, allowed: tuple[str, ...], *, nullable: bool) -> str | None:
    if value is None and nullable:
        return None
    if value not in allowed:
        raise ValidationFailed(
            f"Invalid value {value!r} for '{name}': must be one of {', '.join(allowed)}",
            field=name,
        )
    return str(value)


def _non_negative_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationFailed(f"{value!r} is not of type 'integer'", field=name)
    if value < 0:
        raise ValidationFailed(f"'{name}' must be 0 or more, got {value}", field=name)
    if value > 2**31 - 1:
        raise ValidationFailed(f"'{name}' is too large ({value})", field=name)
    return value


def _boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValidationFailed(f"{value!r} is not of type 'boolean'", field=name)
    return value


def _string(name: str, value: Any, *, nullable: bool) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise ValidationFailed(f"{value!r} is not of type 'string'", field=name)
    if len(value) > MAX_STRING:
        raise ValidationFailed(f"'{name}' is longer than {MAX_STRING} characters", field=name)
    return value


def validate_base(name: str, value: Any) -> Any:
    """The normalised value of a base attribute, or ValidationFailed naming it."""
    if name in ("disk_format",):
        return _enum(name, value, DISK_FORMATS, nullable=True)
    if name == "container_format":
        return _enum(name, value, CONTAINER_FORMATS, nullable=True)
    if name == "visibility":
        return _enum(name, value, VISIBILITIES, nullable=False)
    if name in ("min_disk", "min_ram"):
        return _non_negative_int(name, value)
    if name in ("protected", "os_hidden"):
        return _boolean(name, value)
    if name == "tags":
        return validate_tags(value)
    if name == "name":
        return _string(name, value, nullable=True)
    if name == "owner":
        return _string(name, value, nullable=False)
    raise AssertionError(f"not a base attribute: {name}")


def validate_property(name: str, value: Any) -> str:
    """An extra property: a non-empty key of at most 255 characters, a string value."""
    if not name or len(name) > MAX_STRING:
        raise ValidationFailed(
            f"Property names must have 1 to {MAX_STRING} characters, got {name!r}", field=name
        )
    if not isinstance(value, str):
        raise ValidationFailed(
            f"Invalid value for property '{name}': {value!r} is not of type 'string'",
            field=name,
        )
    if len(value) > 65535:
        raise ValidationFailed(f"Property '{name}' is too long", field=name)
    return value
