"""Nova microversions: negotiation from the request headers, echo in the response.

Clients (novaclient, openstacksdk, the ``openstack`` CLI) read ``min_version`` and
``version`` from the version document, then send the version they want in
``OpenStack-API-Version: compute X.Y`` (or the legacy ``X-OpenStack-Nova-API-Version``).
Every compute route goes through ``MicroversionRoute``, which refuses a malformed
version (400) or one outside the range (406) before the handler runs, makes the version
available to the handler (``api_version``), and echoes it with ``Vary``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from edgefed.core.errors import BadRequest, NotAcceptable


@dataclass(frozen=True, slots=True, order=True)
class APIVersion:
    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> APIVersion:
        match = re.fullmatch(r"\s*(\d+)\.(\d+)\s*", text)
        if match is None or match.group(1) == "0":
            raise BadRequest(
                f"API Version String {text} is of invalid format. Must be of format "
                "MajorNum.MinorNum."
            )
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

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
    version = APIVersion.parse(requested)
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise NotAcceptable(
            f"Version {version} is not supported by the API. Minimum is {MIN_VERSION} "
            f"and maximum is {MAX_VERSION}."
        )
    return version


def echo_headers(version: APIVersion) -> dict[str, str]:
    return {
        VERSION_HEADER: f"compute {version}",
        LEGACY_HEADER: str(version),
        "Vary": f"{VERSION_HEADER}, {LEGACY_HEADER}",
    }


class MicroversionRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            version = negotiate(request.headers)
            request.state.compute_api_version = version
            response = await original(request)
            for name, value in echo_headers(version).items():
                response.headers[name] = value
            return response

        return handler


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
