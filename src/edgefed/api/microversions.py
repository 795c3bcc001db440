"""What Nova's and Cinder's microversions share (services/compute/microversion.py,
services/volume/microversion.py): a version is MAJOR.MINOR, ordered, and a malformed
one is a 400 and one outside the API's range a 406, in the words both use; a route
negotiates the version before its handler, keeps it in the request's state and echoes
it on the answer. Which headers are read and written, which strings are versions and
whether a fault is echoed too, each service says.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, ClassVar, Self, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from edgefed.core.errors import BadRequest, EdgefedError, NotAcceptable


@dataclass(frozen=True, slots=True, order=True)
class Version:
    """MAJOR.MINOR; a service's subclass says in ``PATTERN`` which strings name one."""

    PATTERN: ClassVar[re.Pattern[str]] = re.compile(r"(\d+)\.(\d+)")
    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> Self:
        match = cls.PATTERN.fullmatch(text)
        if match is None:
            raise BadRequest(
                f"API Version String {text} is of invalid format. Must be of format "
                "MajorNum.MinorNum."
            )
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


V = TypeVar("V", bound=Version)
Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def within(version: V, lowest: V, highest: V) -> V:
    """``version``, if the API serves it (406 otherwise)."""
    if not lowest <= version <= highest:
        raise NotAcceptable(
            f"Version {version} is not supported by the API. Minimum is {lowest} "
            f"and maximum is {highest}."
        )
    return version


def negotiated(
    original: Handler,
    negotiate: Callable[[Any], V],
    echo: Callable[[V], dict[str, str]],
    *,
    state: str,
    echo_faults: bool,
) -> Handler:
    """A route handler (an ``APIRoute.get_route_handler``'s) that negotiates the
    request's version from its headers first, keeps it as ``request.state.<state>`` and
    echoes it on the answer, and with ``echo_faults`` on a fault too."""

    async def handler(request: Request) -> Response:
        version = negotiate(request.headers)
        setattr(request.state, state, version)
        try:
            response = await original(request)
        except EdgefedError as exc:
            if echo_faults:
                exc.headers = {**exc.headers, **echo(version)}
            raise
        response.headers.update(echo(version))
        return response

    return handler
