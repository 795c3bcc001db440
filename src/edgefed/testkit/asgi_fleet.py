"""Several in-process sites that reach each other through ASGI, no sockets.

``FleetTransport`` routes each request by host name (``http://berlin.test``) to that
site's app; a host can be cut (every request to it fails like a dead link) and healed.
"""

from __future__ import annotations

import httpx


class FleetTransport(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self.apps: dict[str, httpx.ASGITransport] = {}
        self.cut: set[str] = set()

    def add(self, host: str, transport: httpx.ASGITransport) -> None:
        self.apps[host] = transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if host in self.cut:
            raise httpx.ConnectError(f"link to {host} is cut (test)", request=request)
        transport = self.apps.get(host)
        if transport is None:
            raise httpx.ConnectError(f"no site at {host}", request=request)
        return await transport.handle_async_request(request)
