"""Pure ASGI middleware shared by every site: body size limit and request ids."""

from __future__ import annotations

import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edgefed.api.faults import fault_response


class BodyLimit:
    """Refuse bodies over ``max_bytes`` with a 413, except on paths that stream data."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, streaming_suffixes: tuple[str, ...] = ()):
        self.app = app
        self.max_bytes = max_bytes
        self.streaming_suffixes = streaming_suffixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].endswith(self.streaming_suffixes):
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = -1
                if length < 0 or length > self.max_bytes:
                    response = fault_response(
                        scope["path"],
                        413 if length > 0 else 400,
                        f"Request body is larger than {self.max_bytes} bytes"
                        if length > 0
                        else "Invalid Content-Length header",
                    )
                    await response(scope, receive, send)
                    return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            response = fault_response(
                scope["path"], 413, f"Request body is larger than {self.max_bytes} bytes"
            )
            await response(scope, receive, send)


class _TooLarge(Exception):
    pass


class RequestId:
    """Every response carries ``x-openstack-request-id`` (as the OpenStack services do)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"req-{uuid.uuid4()}".encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-openstack-request-id", request_id))
                headers.append((b"x-compute-request-id", request_id))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)
