"""Nova microversions: negotiation from the request headers, echo in the response.

Clients (novaclient, openstacksdk, the ``openstack`` CLI) read ``min_version`` and
``version`` from the version document, then send the version they want in
``OpenStack-API-Version: compute X.Y`` (or the legacy ``X-OpenStack-Nova-API-Version``).
Every compute route goes through ``NegotiatedRoute``, which refuses a malformed
version (400) or one outside the range (406) before the handler runs, makes the version
available to the handler (``api_version``), and echoes it with ``Vary``. Compute's
routers declare ``MicroversionRoute``s, which ``mount`` builds as ``NegotiatedRoute``s
(api/service.py, ``DeclaredRoute``: built once, not once per router).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from edgefed.api.microversions import Version, negotiated, within
from edgefed.api.service import declared


class APIVersion(Version):
    __slots__ = ()
    # Spaces around it allowed; a major version of "0" is malformed (a 400, not a 406).
    PATTERN = re.compile(r"\s*(?!0\.)(\d+)\.(\d+)\s*")

    def at_least(self, text: str) -> bool:
        return self >= APIVersion.parse(text)


MIN_VERSION = APIVersion(2, 1)
MAX_VERSION = APIVersion(2, 96)
VERSION_HEADER = "OpenStack-API-Version"
LEGACY_HEADER = "X-OpenStack-Nova-API-Version"
VERSION_STATE = "compute_api_version"


def negotiate(headers: Any) -> APIVersion:
    """The version a request asked for (2.1 when it asked for none)."""
    requested: str | None = None
    raw = headers.get(VERSION_HEADER)
    if raw:
        for item in raw.split(","):
            parts = item.strip().split(None, 1)
            if len(parts) == 2 and parts[0].lower() == "compute":
                requested = parts[1].strip()
    if requested is None:
        requested = headers.get(LEGACY_HEADER)
    if not requested:
        return MIN_VERSION
    if requested.strip().lower() == "latest":
        return MAX_VERSION
    return within(APIVersion.parse(requested), MIN_VERSION, MAX_VERSION)


def echo_headers(version: APIVersion) -> dict[str, str]:
    return {
        VERSION_HEADER: f"compute {version}",
        LEGACY_HEADER: str(version),
        "Vary": f"{VERSION_HEADER}, {LEGACY_HEADER}",
    }


class NegotiatedRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return negotiated(super().get_route_handler(), negotiate, echo_headers,
                          state=VERSION_STATE, echo_faults=False)  # fmt: skip


# The route class of compute's routers (``APIRouter(route_class=MicroversionRoute)``).
MicroversionRoute = declared(NegotiatedRoute)


def api_version(request: Request) -> APIVersion:
    """FastAPI dependency: the negotiated version of this request."""
    version: APIVersion = getattr(request.state, VERSION_STATE, MIN_VERSION)
    return version


def version_document(base_url: str) -> dict[str, Any]:
    return {
        "id": "v2.1",
        "status": "CURRENT",
        "version": str(MAX_VERSION),
        "min_version": str(MIN_VERSION),
        "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": f"{base_url}/v2.1/"}],
        "media-types": [
            {
                "base": "application/json",
                "type": "application/vnd.openstack.compute+json;version=2.1",
            }
        ],
    }


def legacy_document(base_url: str) -> dict[str, Any]:
    return {
        "id": "v2.0",
        "status": "DEPRECATED",
        "version": "",
        "min_version": "",
        "updated": "2025-07-04T12:00:00Z",
        "links": [{"rel": "self", "href": f"{base_url}/v2/"}],
    }
