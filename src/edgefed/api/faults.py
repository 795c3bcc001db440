"""Errors rendered, in exactly one place, into the fault body each client expects.

The style depends on the service that the path belongs to:

- ``keystone`` (identity, edge, anything else): ``{"error": {"code", "title", "message"}}``
- ``nova`` (compute, volume):  ``{"itemNotFound": {"code": 404, "message": …}}``
- ``glance`` (image): webob's JSON, ``{"code": "404 Not Found", "title", "message"}``
- ``neutron`` (network): ``{"NeutronError": {"type", "message", "detail"}}``

A 5xx is a bug: it is logged with its traceback and answered with a generic message.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from edgefed.api.responses import Json
from edgefed.core.errors import EdgefedError, ValidationFailed

log = logging.getLogger("edgefed.faults")

# path prefix -> fault style
STYLES: list[tuple[str, str]] = [
    ("/compute", "nova"),
    ("/volume", "nova"),
    ("/image", "glance"),
    ("/network", "neutron"),
]

_NOVA_KEYS = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    406: "notAcceptable",
    409: "conflictingRequest",
    413: "overLimit",
    415: "badMediaType",
    416: "rangeNotSatisfiable",
    429: "overLimit",
    501: "notImplemented",
    502: "badGateway",
    503: "serviceUnavailable",
}
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    410: "Gone",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    416: "Requested Range Not Satisfiable",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def style_for(path: str) -> str:
    for prefix, style in STYLES:
        if path == prefix or path.startswith(prefix + "/"):
            return style
    return "keystone"


def fault_body(style: str, status: int, message: str, *, kind: str | None = None) -> Any:
    title = _TITLES.get(status, "Error")
    if style == "nova":
        return {_NOVA_KEYS.get(status, "computeFault"): {"code": status, "message": message}}
    if style == "glance":
        return {"code": f"{status} {title}", "title": title, "message": message}
    if style == "neutron":
        return {
            "NeutronError": {
                "type": kind or title.replace(" ", ""),
                "message": message,
                "detail": "",
            }
        }
    return {"error": {"code": status, "title": title, "message": message}}


def fault_response(
    path: str,
    status: int,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    kind: str | None = None,
) -> Response:
    hdrs = dict(headers or {})
    if status == 401 and style_for(path) == "keystone":
        hdrs.setdefault("WWW-Authenticate", 'Keystone uri="/identity"')
    return Json(
        fault_body(style_for(path), status, message, kind=kind), status_code=status, headers=hdrs
    )


def describe_validation(errors: Sequence[Any]) -> str:
    """One sentence naming each bad field, from pydantic's error list."""
    parts: list[str] = []
    for err in errors[:5]:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        where = ".".join(loc)
        typ = err.get("type", "")
        if typ == "json_invalid":
            return "Malformed JSON in request body."
        if typ == "missing":
            parts.append(f"'{where}' is a required property")
        elif typ == "extra_forbidden":
            parts.append(
                "Additional properties are not allowed "
                f"('{loc[-1] if loc else where}' was unexpected)"
            )
        else:
            msg = err.get("msg", "is invalid")
            parts.append(f"Invalid input for field '{where}': {msg}" if where else str(msg))
    return "; ".join(parts) or "Invalid input."


async def handle_edgefed_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, EdgefedError)
    if exc.status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, exc.message)
    message = exc.message
    if isinstance(exc, ValidationFailed) and exc.field and exc.field not in message:
        message = f"{message} (field '{exc.field}')"
    return fault_response(
        request.url.path, exc.status, message, headers=exc.headers, kind=exc.details.get("kind")
    )


async def handle_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return fault_response(request.url.path, 400, describe_validation(exc.errors()))


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "Error")
    if exc.status_code == 404 and message == "Not Found":
        message = f"The resource could not be found: {request.method} {request.url.path}"
    if exc.status_code == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}"
    return fault_response(
        request.url.path, exc.status_code, message, headers=dict(exc.headers or {})
    )


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return fault_response(
        request.url.path,
        500,
        "An unexpected error prevented the server from fulfilling your request.",
    )
