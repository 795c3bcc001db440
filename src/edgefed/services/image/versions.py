"""Glance's version documents, so keystoneauth's discovery finds v2 under ``/image``.

``GET /image`` answers 300 Multiple Choices (as Glance does), ``GET /image/versions``
200 with the same document; every v2.x entry points at ``<public url>/image/v2/``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request

from edgefed.api.context import site_context
from edgefed.api.responses import Json
from edgefed.api.service import DeclaredRoute

router = APIRouter(route_class=DeclaredRoute)

# Glance's v2 minor versions, newest first; they all share one endpoint.
MINOR_VERSIONS = ("2.9", "2.8", "2.7", "2.6", "2.5", "2.4", "2.3", "2.2", "2.1", "2.0")


def versions_document(request: Request) -> dict[str, Any]:
    href = f"{site_context(request).public_url}/image/v2/"
    return {
        "versions": [
            {
                "id": f"v{minor}",
                "status": "CURRENT" if i == 0 else "SUPPORTED",
                "links": [{"rel": "self", "href": href}],
            }
            for i, minor in enumerate(MINOR_VERSIONS)
        ]
    }


@router.get("", include_in_schema=False)
@router.get("/")
async def image_root(request: Request) -> Json:
    return Json(versions_document(request), status_code=300)


@router.get("/versions")
@router.get("/v2")
@router.get("/v2/")
async def image_versions(request: Request) -> Json:
    return Json(versions_document(request))
