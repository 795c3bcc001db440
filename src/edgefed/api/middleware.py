"""Pure ASGI middleware shared by every site: request body hygiene and request ids.

``BodyLimit`` sits outside the scope router (app.py), so its checks run before the router
buffers a body for a fan-out or streams it to another site: a body over the size limit
is a 413 and JSON nested deeper than ``max_json_depth`` a 400, for a request served here
as for one sent elsewhere, and the body goes nowhere. Deep nesting is refused here, in one
place, because every parser after it recurses (Python's ``json`` raises RecursionError,
pydantic and orjson have their own limits, and a value stored deep is rendered deeper).
"""

from __future__ import annotations

import random
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edgefed.api.faults import fault_response

# Deeper than any OpenStack body (a Glance JSON patch is 3 levels, a Keystone token
# request 6), and shallow enough that whatever stores and re-renders a value (inside a
# token body, a sync push, a scope merge) stays far below the parsers' recursion limits.
MAX_JSON_DEPTH = 64

# The bytes that matter to nesting: brackets, and the quotes and backslashes of strings.
_STRUCTURAL = re.compile(rb'[\[\]{}"\\]')
_OPEN = frozenset(b"[{")
_CLOSE = frozenset(b"]}")
_QUOTE, _BACKSLASH = ord('"'), ord("\\")


class JsonNesting:
    """How deep the JSON read so far nests, fed chunk by chunk, in linear time.

    Most bodies hold fewer brackets than the limit, and then nothing is scanned: the
    count of opening brackets bounds the depth. Past that, a scan of the structural
    bytes follows the real depth (brackets inside strings do not count). The input need
    not be valid JSON: a parser refuses what is not; this only bounds what it will get.
    """

    def __init__(self, max_depth: int):
        self.max_depth = max_depth
        self.bound = 0
        self.pending: list[bytes] | None = []  # chunks not scanned yet (None: scanning)
        self.depth = 0
        self.in_string = False
        self.escaped = False

    def feed(self, chunk: bytes) -> bool:
        """False as soon as the nesting goes deeper than ``max_depth``."""
        if self.pending is not None:
            self.bound += chunk.count(b"{") + chunk.count(b"[")
            self.pending.append(chunk)
            if self.bound <= self.max_depth:
                return True
            pending, self.pending = self.pending, None
            return all(self._scan(c) for c in pending)
        return self._scan(chunk)

    def _scan(self, chunk: bytes) -> bool:
        depth, in_string, skip = self.depth, self.in_string, 0
        if self.escaped and chunk:
            skip, self.escaped = 1, False
        for match in _STRUCTURAL.finditer(chunk, skip):
            i = match.start()
            if i < skip:
                continue
            c = chunk[i]
            if in_string:
                if c == _BACKSLASH:
                    skip = i + 2
                    self.escaped = skip > len(chunk)
                elif c == _QUOTE:
                    in_string = False
            elif c == _QUOTE:
                in_string = True
            elif c in _OPEN:
                depth += 1
                if depth > self.max_depth:
                    return False
            elif c in _CLOSE:
                depth -= 1
        self.depth, self.in_string = depth, in_string
        return True


class BodyLimit:
    """Refuse bodies over ``max_bytes`` with a 413 and JSON nested deeper than
    ``max_json_depth`` with a 400, except on paths that stream data (image uploads).

    The body is read (never past the limit) and checked before the app sees any of it,
    then handed on in one piece: a refused body reaches no handler, and the scope router
    forwards or fans out only bodies that passed. Bodies under the limit are small, and
    every handler reads its body whole anyway.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        streaming_suffixes: tuple[str, ...] = (),
        max_json_depth: int = MAX_JSON_DEPTH,
    ):
        self.app = app
        self.max_bytes = max_bytes
        self.streaming_suffixes = streaming_suffixes
        self.max_json_depth = max_json_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].endswith(self.streaming_suffixes):
            await self.app(scope, receive, send)
            return
        too_large = f"Request body is larger than {self.max_bytes} bytes"
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = -1
                if length < 0 or length > self.max_bytes:
                    status, why = (
                        (413, too_large) if length > 0 else (400, "Invalid Content-Length header")
                    )
                    await fault_response(scope["path"], status, why)(scope, receive, send)
                    return
        chunks: list[bytes] = []
        seen = 0
        nesting = JsonNesting(self.max_json_depth)
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            refusal: tuple[int, str] | None = None
            if seen > self.max_bytes:
                refusal = (413, too_large)
            elif chunk and not nesting.feed(chunk):
                refusal = (
                    400,
                    f"Malformed request body: JSON nested deeper than {self.max_json_depth} levels",
                )
            if refusal is not None:
                await fault_response(scope["path"], *refusal)(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body: bytes | None = b"".join(chunks)

        async def replay() -> Message:
            nonlocal body
            if body is None:
                return await receive()  # after the body: the client's disconnect, as usual
            message: Message = {"type": "http.request", "body": body, "more_body": False}
            body = None
            return message

        await self.app(scope, replay, send)


def new_request_id() -> bytes:
    """``req-`` and a version-4 UUID, as the OpenStack services send.

    A request id tells requests apart in logs; it is no secret, so it comes from the
    process's pseudo-random generator (reseeded in a forked child) instead of
    ``uuid.uuid4()``, whose system call and UUID object showed in the profile of a token
    validation (docs/bench.md).
    """
    bits = random.getrandbits(128)
    bits = (bits & ~(0xF000 << 64)) | (4 << 76)  # version 4
    bits = (bits & ~(0xC000 << 48)) | (0x8000 << 48)  # RFC 4122 variant
    h = f"{bits:032x}"
    return f"req-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}".encode()


class RequestId:
    """Every response carries ``x-openstack-request-id`` (as the OpenStack services do)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-openstack-request-id", request_id))
                headers.append((b"x-compute-request-id", request_id))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)
