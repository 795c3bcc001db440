"""The list of volumes and of snapshots: Cinder's filters, sort keys and pages."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlencode

from edgefed.api.resource import Call
from edgefed.core.errors import NotFound
from edgefed.services.volume import microversion as mv
from edgefed.services.volume.cinder import (
    all_tenants,
    boolean,
    invalid_input,
    limit_of,
    sort_keys,
    version,
)
from edgefed.store.volume import MarkerNotFound, Page

R = TypeVar("R")

MAX_INT = 2**31 - 1
PAGING = frozenset({"limit", "marker", "sort", "sort_key", "sort_dir", "offset", "with_count"})
TENANCY = frozenset({"all_tenants", "all_projects"})


def metadata_filter(raw: str) -> dict[str, str]:
    """``metadata={"k": "v"}`` (JSON; Cinder also reads Python's dict notation)."""
    try:
        value = json.loads(raw.replace("'", '"'))
    except ValueError as exc:
        raise invalid_input(f"Invalid metadata filter: {raw}") from exc
    if not isinstance(value, dict):
        raise invalid_input(f"Invalid metadata filter: {raw}")
    return {str(k): str(v) for k, v in value.items()}


def page_of(
    call: Call,
    *,
    columns: Mapping[str, str],
    sortable: Iterable[str],
    parse: Mapping[str, Any] | None = None,
) -> Page:
    """The page a list asks for: query parameters named in ``columns`` (parameter →
    column) filter, ``metadata`` filters, unknown ones are refused (400); the caller's
    project unless an admin asks for ``all_tenants``."""
    params = call.query
    filters: dict[str, object] = {}
    wanted: dict[str, str] = {}
    unknown: list[str] = []
    for name in params:
        if name in PAGING or name in TENANCY:
            continue
        value = params[name]
        if name == "metadata":
            wanted = metadata_filter(value)
        elif name in columns:
            reader = (parse or {}).get(name)
            filters[columns[name]] = reader(call, value) if reader else value
        elif name == "project_id" and call.principal.is_admin:
            filters["project_id"] = value
        else:
            unknown.append(name)
    if unknown:
        raise invalid_input(
            f"Invalid filters {', '.join(sorted(unknown))} are found in query options."
        )
    if not all_tenants(call) and "project_id" not in filters:
        filters["project_id"] = call.principal.project_id or ""
    return Page(
        filters=filters,
        metadata=wanted,
        sort=sort_keys(params, sortable),
        limit=limit_of(params),
        marker=params.get("marker") or None,
        offset=offset_of(params.get("offset")),
    )


def offset_of(raw: str | None) -> int:
    if raw is None or raw == "":
        return 0
    try:
        value = int(raw)
    except ValueError as exc:
        raise invalid_input("offset param must be an integer") from exc
    if not 0 <= value <= MAX_INT:
        raise invalid_input("offset param must be positive")
    return value


def bootable(call: Call, value: str) -> bool:
    """Since 3.2 a bootable filter is read as a boolean (before, any value was true)."""
    if version(call) < mv.BOOTABLE_FILTER:
        return True
    return boolean(value, "bootable")


def size(call: Call, value: str) -> int:
    try:
        number = int(value)
    except ValueError as exc:
        raise invalid_input(f"Invalid size filter: {value}") from exc
    if not 0 <= number <= MAX_INT:
        raise invalid_input(f"Invalid size filter: {value}")
    return number


def marker_missing(marker: str | None) -> NotFound:
    return NotFound(f"Marker {marker} could not be found.")


def next_links(
    call: Call, collection: str, items: list[dict[str, Any]], page: Page
) -> list[dict[str, str]]:
    """Cinder's ``<collection>_links``: a ``next`` link when the page is full."""
    if page.limit is None or len(items) < page.limit or not items:
        return []
    query = [(k, v) for k, v in call.query.multi_items() if k != "marker"]
    query.append(("marker", items[-1]["id"]))
    rest = urlencode(query)
    path = call.request.url.path
    return [{"href": f"{call.ctx.public_url}{path}?{rest}", "rel": "next"}]


async def paged(call: Call, read: Callable[[Page], Awaitable[list[R]]], page: Page) -> list[R]:
    """The records of ``page`` read through ``read`` (a repository's ``page``), the page
    kept for ``listed``'s links; a marker that is none of them is a 404."""
    call.request.state.volume_page = page
    try:
        return await read(page)
    except MarkerNotFound as exc:
        raise marker_missing(page.marker) from exc


def listed(
    call: Call,
    collection: str,
    views: list[dict[str, Any]],
    summary: Callable[[dict[str, Any]], dict[str, Any]],
) -> dict[str, Any]:
    """A list's document: each view's ``summary`` unless ``/detail`` was asked for, and
    the ``next`` link of a full page (the page ``paged`` kept)."""
    if not call.request.url.path.endswith("/detail"):
        views = [summary(v) for v in views]
    found: dict[str, Any] = {collection: views}
    more = next_links(call, collection, views, call.request.state.volume_page)
    if more:
        found[f"{collection}_links"] = more
    return found


def written(call: Call, view: dict[str, Any], extension: Callable[[str], bool]) -> dict[str, Any]:
    """A view as a create or an update answers it: without the ``extension`` attributes,
    which Cinder's extensions add to show and the lists only."""
    if call.request.method in ("POST", "PUT"):
        return {k: v for k, v in view.items() if not extension(k)}
    return view
