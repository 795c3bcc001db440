"""Version discovery documents, exactly as Keystone serves them.

keystoneauth reads ``GET /identity`` (300 Multiple Choices, the list of versions) or
``GET /identity/v3`` (the one version) to find the v3 API, so these shapes must match
Keystone's byte for byte in the fields it reads: id, status, links, media-types.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from edgefed.api.context import site_context
from edgefed.api.responses import Json

VERSION_ID = "v3.14"
UPDATED = "2020-04-07T00:00:00Z"
MEDIA_TYPES = [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]


def v3_entry(base_url: str) -> dict[str, Any]:
    return {
        "id": VERSION_ID,
        "status": "stable",
        "updated": UPDATED,
        "links": [{"rel": "self", "href": f"{base_url}/identity/v3/"}],
        "media-types": MEDIA_TYPES,
    }


async def versions(request: Request) -> Json:
    base = site_context(request).public_url
    return Json({"versions": {"values": [v3_entry(base)]}}, status_code=300)


async def version_v3(request: Request) -> Json:
    base = site_context(request).public_url
    return Json({"version": v3_entry(base)})


def add_routes(router: APIRouter) -> None:
    """On the service's top router: an empty path is only allowed where the prefix is added."""
    for path in ("", "/"):
        router.add_api_route(path, versions, methods=["GET"], include_in_schema=False)
    for path in ("/v3", "/v3/"):
        router.add_api_route(path, version_v3, methods=["GET"], include_in_schema=False)
