"""Cinder microversions: ``OpenStack-API-Version: volume 3.x`` asked, checked, echoed.

As Cinder does: no header is 3.0; ``latest`` is the maximum; a header without a
``volume`` entry is a 400 ("API version None is not supported on this method."); a
malformed version is a 400 and one outside 3.0 to MAX_VERSION a 406, before any handler runs.
Every answer, a fault included, says the version it was made for and ``Vary``s on
the header. A route that needs a later version than the one asked answers 404, as if
it did not exist (Cinder's ``VersionNotFoundForAPIMethod``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from edgefed.api import microversions
from edgefed.api.microversions import negotiated, within
from edgefed.api.service import declared, route_settings
from edgefed.core.errors import BadRequest, NotFound


class Version(microversions.Version):
    __slots__ = ()
    # No spaces, no leading zeros.
    PATTERN = re.compile(r"([1-9]\d*)\.([1-9]\d*|0)")


MIN_VERSION = Version(3, 0)
# Cinder 2025.2's maximum: what the volume API here answers at each version is said in
# docs/volume.md (API families not served here answer 404 at every version).
MAX_VERSION = Version(3, 71)
HEADER = "OpenStack-API-Version"
STATE = "volume_api_version"
UPDATED = "2023-08-31T00:00:00Z"

# The versions features appeared at.
ATTACHMENTS = Version(3, 27)
ATTACHMENT_COMPLETE = Version(3, 44)
SHARED_TARGETS = Version(3, 48)
ATTACHMENT_MODE = Version(3, 54)
VOLUME_TYPE_ID = Version(3, 63)
CONSUMES_QUOTA = Version(3, 65)
SNAPSHOT_IN_USE = Version(3, 66)
UPLOAD_VISIBILITY = Version(3, 1)
BOOTABLE_FILTER = Version(3, 2)
GROUP_ID = Version(3, 13)
COUNT = Version(3, 45)
SNAPSHOT_METADATA_FILTER = Version(3, 22)


def negotiate(headers: Any) -> Version:
    raw = headers.get(HEADER)
    if raw is None:
        return MIN_VERSION
    asked: str | None = None
    for item in raw.split(","):
        parts = item.split()
        if len(parts) == 2 and parts[0].lower() == "volume":
            asked = parts[1]
            break
    if asked is None:
        raise BadRequest("API version None is not supported on this method.")
    if asked == "latest":
        return MAX_VERSION
    return within(Version.parse(asked), MIN_VERSION, MAX_VERSION)


def echo(version: Version) -> dict[str, str]:
    return {HEADER: f"volume {version}", "Vary": HEADER}


class VolumeRoute(APIRoute):
    """A route of the volume API: the version negotiated first, echoed on the answer."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return negotiated(super().get_route_handler(), negotiate, echo,
                          state=STATE, echo_faults=True)  # fmt: skip


def version_of(request: Request) -> Version:
    found: Version = getattr(request.state, STATE, MIN_VERSION)
    return found


def require(request: Request, version: Version) -> None:
    """404 below ``version``: the route does not exist for this request."""
    if version_of(request) < version:
        raise NotFound("The resource could not be found.")


def versioned(routes: Sequence[BaseRoute]) -> list[BaseRoute]:
    """The same routes, each a ``VolumeRoute`` (the resource kit declares plain ones),
    declared: ``mount`` builds them (api/service.py, ``DeclaredRoute``)."""
    router = APIRouter(route_class=declared(VolumeRoute))
    for route in routes:
        assert isinstance(route, APIRoute)
        router.add_api_route(route.path, route.endpoint, **route_settings(route))
    return list(router.routes)


def version_document(base: str, *, status: int = 200) -> dict[str, Any]:
    """Cinder's versions document (``/volume/`` answers it 300, ``/volume/v3`` 200)."""
    return {
        "versions": [
            {
                "id": "v3.0",
                "status": "CURRENT",
                "version": str(MAX_VERSION),
                "min_version": str(MIN_VERSION),
                "updated": UPDATED,
                "links": [
                    {
                        "rel": "describedby",
                        "type": "text/html",
                        "href": "https://docs.openstack.org/",
                    },
                    {"rel": "self", "href": f"{base}/v3/"},
                ],
                "media-types": [
                    {
                        "base": "application/json",
                        "type": "application/vnd.openstack.volume+json;version=3",
                    }
                ],
            }
        ]
    }
