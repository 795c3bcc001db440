"""Nova's ``links`` (self + bookmark) for a resource of the compute API."""

from __future__ import annotations

from typing import Any

from starlette.requests import HTTPConnection

from edgefed.api.context import site_context


def links(conn: HTTPConnection, collection: str, item_id: str) -> list[dict[str, Any]]:
    base = f"{site_context(conn).public_url}/compute"
    return [
        {"rel": "self", "href": f"{base}/v2.1/{collection}/{item_id}"},
        {"rel": "bookmark", "href": f"{base}/{collection}/{item_id}"},
    ]


def next_link(conn: HTTPConnection, collection: str, marker: str, limit: int) -> dict[str, Any]:
    base = f"{site_context(conn).public_url}/compute/v2.1/{collection}"
    return {"rel": "next", "href": f"{base}?limit={limit}&marker={marker}"}
