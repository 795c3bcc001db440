"""One error tree for the whole site.

Every room raises these; `edgefed.api.faults` renders them, in exactly one place, into
the fault body that the client of each OpenStack service expects. Foreign exceptions
are translated at the seam (``raise NotFound(...) from exc``).

    EdgefedError                 500 (only ever a bug)
    ├── BadRequest               400  the request names something wrong: the message says what
    │   └── ValidationFailed     400  a field has the wrong type or value (field is named)
    ├── Unauthorized             401  no token, a bad token, wrong credentials
    ├── Forbidden                403  the policy refuses the caller
    │   └── OverQuota            403  Nova's and Cinder's way of refusing over quota
    ├── NotFound                 404
    ├── NotAcceptable            406
    ├── Conflict                 409  a name taken, a state that forbids the action
    │   └── Locked               409  the resource is owned by a sync source
    ├── Gone                     410
    ├── PayloadTooLarge          413
    ├── UnsupportedMediaType     415
    ├── RangeNotSatisfiable      416
    ├── Unavailable              503  a dependency (a remote site) cannot answer now
    └── UpstreamFailed           502  a remote site answered with an error
"""

from __future__ import annotations

from typing import Any, ClassVar


class EdgefedError(Exception):
    """Base of every error edgefed raises on purpose."""

    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal Server Error"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None, **details: Any):
        super().__init__(message)
        self.message = message
        self.headers = headers or {}
        self.details = details


class BadRequest(EdgefedError):
    status = 400
    title = "Bad Request"


class ValidationFailed(BadRequest):
    """A field of the request is invalid; ``field`` names it."""

    def __init__(self, message: str, *, field: str | None = None, **details: Any):
        super().__init__(message, **details)
        self.field = field


class Unauthorized(EdgefedError):
    status = 401
    title = "Unauthorized"


class Forbidden(EdgefedError):
    status = 403
    title = "Forbidden"


class OverQuota(Forbidden):
    title = "Quota exceeded"


class NotFound(EdgefedError):
    status = 404
    title = "Not Found"


class MethodNotAllowed(EdgefedError):
    status = 405
    title = "Method Not Allowed"


class NotAcceptable(EdgefedError):
    status = 406
    title = "Not Acceptable"


class Conflict(EdgefedError):
    status = 409
    title = "Conflict"


class Locked(Conflict):
    """The resource was delivered by a sync source and may only be changed there."""

    def __init__(self, message: str, *, source: str, **details: Any):
        super().__init__(message, **details)
        self.source = source


class Gone(EdgefedError):
    status = 410
    title = "Gone"


class PayloadTooLarge(EdgefedError):
    status = 413
    title = "Request Entity Too Large"


class UnsupportedMediaType(EdgefedError):
    status = 415
    title = "Unsupported Media Type"


class RangeNotSatisfiable(EdgefedError):
    status = 416
    title = "Requested Range Not Satisfiable"


class UpstreamFailed(EdgefedError):
    status = 502
    title = "Bad Gateway"


class Unavailable(EdgefedError):
    status = 503
    title = "Service Unavailable"
