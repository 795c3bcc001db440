"""Glance's JSON-patch dialect for ``PATCH /v2/images/{id}``.

Media type ``application/openstack-images-v2.1-json-patch`` (2.0 is accepted too): a
list of ``{"op": add|replace|remove, "path": "/attr", "value": …}``. Paths are one
level deep (JSON-pointer escaped: ``~1`` is ``/``), except ``/tags/-`` (append a tag).
Read-only attributes are refused with 403, as Glance does; replacing or removing a
property that does not exist is a 409.

The result is a set of column changes for ``ImageRepository.update``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgefed.core.errors import BadRequest, Conflict, Forbidden, UnsupportedMediaType
from edgefed.services.image.attributes import (
    BASE,
    MAX_TAGS,
    READ_ONLY,
    validate_base,
    validate_property,
    validate_tag,
)
from edgefed.store.image import ImageRecord

PATCH_MEDIA_TYPES = (
    "application/openstack-images-v2.1-json-patch",
    "application/openstack-images-v2.0-json-patch",
)
OPS = ("add", "replace", "remove")


def require_patch_media_type(content_type: str | None) -> None:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media not in PATCH_MEDIA_TYPES:
        raise UnsupportedMediaType(
            f"Unsupported Content-Type {media or '(none)'!r}: use {PATCH_MEDIA_TYPES[0]}",
            headers={"Accept-Patch": ", ".join(PATCH_MEDIA_TYPES)},
        )


@dataclass
class PatchResult:
    changes: dict[str, Any] = field(default_factory=dict)

    @property
    def visibility(self) -> str | None:
        value = self.changes.get("visibility")
        return value if isinstance(value, str) else None


def _unescape(segment: str) -> str:
    return segment.replace("~1", "/").replace("~0", "~")


def _parse_path(raw: Any) -> list[str]:
    if not isinstance(raw, str) or not raw.startswith("/") or raw == "/":
        raise BadRequest(f"Invalid JSON pointer for this resource: {raw!r}")
    return [_unescape(s) for s in raw[1:].split("/")]


def apply_patch(record: ImageRecord, operations: Any) -> PatchResult:
    if not isinstance(operations, list):
        raise BadRequest("A JSON patch document must be a list of operations.")
    base: dict[str, Any] = {name: getattr(record, name) for name in BASE}
    base["tags"] = list(record.tags)
    properties = dict(record.properties)
    touched: set[str] = set()
    for number, op in enumerate(operations):
        if not isinstance(op, dict):
            raise BadRequest(f"Operation {number} is not a JSON object.")
        kind = op.get("op")
        if kind not in OPS:
            raise BadRequest(
                f"Operation {number}: op {kind!r} is not supported (use add, replace or remove)."
            )
        if "path" not in op:
            raise BadRequest(f"Operation {number}: 'path' is required.")
        path = _parse_path(op["path"])
        if kind != "remove" and "value" not in op:
            raise BadRequest(f"Operation {number}: 'value' is required for {kind}.")
        value = op.get("value")
        name = path[0]
        if name in READ_ONLY or name == "id":
            raise Forbidden(f"Attribute '{name}' is read-only.")
        if len(path) == 2 and name == "tags":
            _patch_tag(base, kind, path[1], value)
            touched.add("tags")
            continue
        if len(path) != 1:
            raise BadRequest(f"Invalid JSON pointer for this resource: {op['path']!r}")
        if name in BASE:
            if kind == "remove":
                raise Forbidden(f"Attribute '{name}' cannot be removed.")
            base[name] = validate_base(name, value)
            touched.add(name)
            continue
        if kind in ("replace", "remove") and name not in properties:
            raise Conflict(f"Property {name} does not exist.")
        if kind == "remove":
            del properties[name]
        else:
            properties[name] = validate_property(name, value)
        touched.add("properties")
    if "tags" in touched and len(base["tags"]) > MAX_TAGS:
        raise Forbidden(f"An image may have at most {MAX_TAGS} tags.")
    result = PatchResult()
    for name in touched:
        result.changes[name] = properties if name == "properties" else base[name]
    return result


def _patch_tag(base: dict[str, Any], kind: str, index: str, value: Any) -> None:
    tags: list[str] = base["tags"]
    if kind == "add" and index == "-":
        tag = validate_tag(value)
        if tag not in tags:
            tags.append(tag)
        return
    try:
        position = int(index)
    except ValueError as exc:
        raise BadRequest(f"Invalid tag index {index!r}") from exc
    if not 0 <= position < len(tags) + (1 if kind == "add" else 0):
        raise Conflict(f"Tag index {position} is out of range.")
    if kind == "remove":
        del tags[position]
    elif kind == "replace":
        tags[position] = validate_tag(value)
    else:
        tags.insert(position, validate_tag(value))
    base["tags"] = list(dict.fromkeys(tags))
