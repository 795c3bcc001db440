"""``GET /v2/images``: Glance's filters, sort keys and limit/marker paging.

An edge site holds at most thousands of images, so visibility is narrowed in SQL and
the rest (filters, sort, paging) runs over records in memory, where every Glance
filter is easy to get exactly right.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import QueryParams

from edgefed.api.paging import MAX_LIMIT, parse_limit
from edgefed.core.errors import BadRequest, ValidationFailed
from edgefed.services.image.attributes import MEMBER_STATUSES, VISIBILITIES
from edgefed.store.image import ImageRecord

SORT_KEYS = (
    "name",
    "status",
    "container_format",
    "disk_format",
    "size",
    "virtual_size",
    "id",
    "created_at",
    "updated_at",
    "min_disk",
    "min_ram",
    "visibility",
    "owner",
)
PAGING = frozenset({"limit", "marker", "sort", "sort_key", "sort_dir"})
SIMPLE_FILTERS = ("name", "status", "owner", "disk_format", "container_format", "id")
KNOWN = frozenset(
    {*PAGING, *SIMPLE_FILTERS, "visibility", "member_status", "tag", "size_min", "size_max"}
    | {"os_hidden"}
)

Record = ImageRecord
Predicate = Callable[[ImageRecord], bool]


@dataclass(frozen=True)
class Page:
    images: list[ImageRecord]
    next_marker: str | None


def _in_or_eq(field: str, raw: str) -> Predicate:
    if raw.startswith("in:"):
        wanted = {v.strip() for v in raw[3:].split(",") if v.strip()}
        return lambda r: getattr(r, field) in wanted
    return lambda r: getattr(r, field) == raw


def _size(raw: str, field: str) -> int:
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValidationFailed(f"{field} must be an integer, got {raw!r}", field=field) from exc
    if value < 0:
        raise ValidationFailed(f"{field} must be 0 or more", field=field)
    return value


def _boolean(raw: str, field: str) -> bool:
    lowered = raw.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ValidationFailed(f"{field} must be true or false, got {raw!r}", field=field)


def sort_spec(params: QueryParams) -> list[tuple[str, bool]]:
    """[(key, descending)], from ``sort=k:dir,...`` or ``sort_key``/``sort_dir``."""
    spec: list[tuple[str, bool]] = []
    if "sort" in params:
        if "sort_key" in params or "sort_dir" in params:
            raise BadRequest("The 'sort' parameter cannot be mixed with 'sort_key'/'sort_dir'.")
        for part in params["sort"].split(","):
            key, _, direction = part.strip().partition(":")
            spec.append((key, _direction(direction or "desc")))
    else:
        keys = params.getlist("sort_key")
        dirs = params.getlist("sort_dir")
        if len(dirs) > 1 and len(dirs) != len(keys):
            raise BadRequest("The number of sort_dir values must match the number of sort_key.")
        for i, key in enumerate(keys):
            raw_dir = dirs[i] if len(dirs) > 1 else (dirs[0] if dirs else "desc")
            spec.append((key, _direction(raw_dir)))
        if not keys and dirs:
            spec.append(("created_at", _direction(dirs[0])))
    for key, _ in spec:
        if key not in SORT_KEYS:
            raise ValidationFailed(
                f"Invalid sort key {key!r}; valid keys: {', '.join(SORT_KEYS)}", field="sort_key"
            )
    keys_used = [k for k, _ in spec]
    if "created_at" not in keys_used and not spec:
        spec.append(("created_at", True))
    if "id" not in keys_used:
        spec.append(("id", spec[-1][1] if spec else True))
    return spec


def _direction(raw: str) -> bool:
    if raw not in ("asc", "desc"):
        raise ValidationFailed(
            f"Invalid sort direction {raw!r}: must be asc or desc", field="sort_dir"
        )
    return raw == "desc"


def _sort(records: list[ImageRecord], spec: list[tuple[str, bool]]) -> list[ImageRecord]:
    ordered = list(records)
    for key, descending in reversed(spec):
        present = [r for r in ordered if getattr(r, key) is not None]
        missing = [r for r in ordered if getattr(r, key) is None]
        present.sort(key=lambda r, k=key: getattr(r, k), reverse=descending)  # type: ignore[misc]
        ordered = present + missing if not descending else missing + present
    return ordered


def select_images(
    records: list[ImageRecord],
    *,
    params: QueryParams,
    project_id: str | None,
    is_admin: bool,
    member_statuses: dict[str, str],
) -> Page:
    """Apply Glance's default visibility rules, the filters, the sort and one page."""
    predicates: list[Predicate] = []
    for field in SIMPLE_FILTERS:
        if field in params:
            predicates.append(_in_or_eq(field, params[field]))
    visibility = params.get("visibility")
    if visibility is not None and visibility not in (*VISIBILITIES, "all"):
        raise ValidationFailed(
            f"Invalid visibility {visibility!r}: must be one of {', '.join(VISIBILITIES)}, all",
            field="visibility",
        )
    member_status = params.get("member_status", "accepted")
    if member_status not in (*MEMBER_STATUSES, "all"):
        raise ValidationFailed(f"Invalid member_status {member_status!r}", field="member_status")
    for tag in params.getlist("tag"):
        predicates.append(lambda r, t=tag: t in r.tags)  # type: ignore[misc]
    if "size_min" in params:
        low = _size(params["size_min"], "size_min")
        predicates.append(lambda r: r.size is not None and r.size >= low)
    if "size_max" in params:
        high = _size(params["size_max"], "size_max")
        predicates.append(lambda r: r.size is not None and r.size <= high)
    hidden = _boolean(params["os_hidden"], "os_hidden") if "os_hidden" in params else False
    predicates.append(lambda r: r.os_hidden == hidden)
    for key, value in params.multi_items():
        if key not in KNOWN:
            predicates.append(lambda r, k=key, v=value: r.properties.get(k) == v)  # type: ignore[misc]

    def shown(record: ImageRecord) -> bool:
        if visibility not in (None, "all") and record.visibility != visibility:
            return False
        own = record.owner is not None and record.owner == project_id
        status = member_statuses.get(record.id)
        if record.visibility == "shared" and not own and status is not None:
            # Shared with the caller: shown by member status (admins see it anyway).
            if member_status != "all" and status != member_status and not is_admin:
                return False
        if visibility is None and record.visibility == "community" and not own:
            return is_admin
        return all(p(record) for p in predicates)

    selected = _sort([r for r in records if shown(r)], sort_spec(params))
    limit = parse_limit(params.get("limit"), default=MAX_LIMIT)
    start = 0
    marker = params.get("marker")
    if marker:
        for i, record in enumerate(selected):
            if record.id == marker:
                start = i + 1
                break
        else:
            raise BadRequest(f"Invalid marker: no image with ID {marker} in this listing.")
    chunk = selected[start : start + limit]
    more = start + limit < len(selected)
    return Page(images=chunk, next_marker=chunk[-1].id if more and chunk else None)


def links(params: QueryParams, page: Page) -> dict[str, Any]:
    """Glance's ``first``/``next``/``schema`` links (relative to the endpoint root)."""
    kept = [(k, v) for k, v in params.multi_items() if k != "marker"]
    first = "/v2/images" + (f"?{urlencode(kept)}" if kept else "")
    doc: dict[str, Any] = {"first": first, "schema": "/v2/schemas/images"}
    if page.next_marker is not None:
        doc["next"] = "/v2/images?" + urlencode([*kept, ("marker", page.next_marker)])
    return doc
