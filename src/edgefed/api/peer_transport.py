"""The inter-site client's transport: one connection pool per peer site.

httpcore's pool examines every pooled connection for every request it places (closed?
expired? the latter a ``poll(2)`` on the socket). One pool holding warm connections to a
hundred peers therefore makes a fan-out to all of them ten thousand such checks: the
aggregator of a 100-site fleet spent ~7 ms of CPU per peer, most of it there. With a
pool per peer, each request looks at that peer's few connections only.

The pools share one TLS context (loading the CA bundle once), and each keeps the
limits given, per peer.
"""

from __future__ import annotations

import ssl

import httpx


class PeerTransport(httpx.AsyncBaseTransport):
    def __init__(self, *, limits: httpx.Limits):
        self._limits = limits
        self._tls: ssl.SSLContext | None = None
        self._pools: dict[tuple[bytes, bytes, int | None], httpx.AsyncHTTPTransport] = {}

    def _pool(self, url: httpx.URL) -> httpx.AsyncHTTPTransport:
        key = (url.raw_scheme, url.raw_host, url.port)
        pool = self._pools.get(key)
        if pool is None:
            if self._tls is None:
                self._tls = httpx.create_ssl_context()
            pool = self._pools[key] = httpx.AsyncHTTPTransport(
                verify=self._tls, limits=self._limits
            )
        return pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._pool(request.url).handle_async_request(request)

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.aclose()
