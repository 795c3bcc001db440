"""Dispatching by first path segment answers every request exactly as a full route scan.

The same site is asked the same requests twice: once through the segment index and once
through the router's plain scan of all its routes; status, Allow and Location must agree.
The requests cover every operation in /openapi.json (with and without a trailing slash,
with its own method and with one it does not have), the root, and paths no route serves.
Unauthenticated, so nothing is created and both passes see the same site.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from edgefed.api.dispatch import SegmentDispatch, first_segment
from edgefed.testkit.inprocess import InProcessSite

METHODS = ("get", "post", "put", "patch", "delete", "head")
ODD_PATHS = (
    "/",
    "/nowhere",
    "/identity",
    "/identity/",
    "/identity/v3/nothing-here",
    "/compute/v2.1/servers/x/y/z",
    "/image/nothing",
    "/network/v2.0/nothing",
    "/edge/v1/nothing",
    "/edge",
    "/openapi.json",
    "/dashboard",
    "/metrics",
    "//double",
)


def test_first_segment() -> None:
    assert first_segment("/identity/v3/auth/tokens") == "identity"
    assert first_segment("/") == ""
    assert first_segment("/{anything}/x") is None
    assert first_segment("relative") is None


async def answers(site: InProcessSite, requests: list[tuple[str, str]]) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for method, path in requests:
        r = await site.client.request(method, path, follow_redirects=False)
        out.append((method, path, r.status_code, r.headers.get("allow"), r.headers.get("location")))
    return out


async def test_same_answers_as_a_full_scan(site: InProcessSite) -> None:
    schema = (await site.client.get("/openapi.json")).json()
    requests: list[tuple[str, str]] = []
    for template, operations in schema["paths"].items():
        path = re.sub(r"\{[^}]+\}", "x", template)
        missing = next((m for m in METHODS if m not in operations), None)
        for method in [*operations, *([missing] if missing else [])]:
            requests += [(method.upper(), path), (method.upper(), path.rstrip("/") + "/")]
    requests += [(m.upper(), p) for p in ODD_PATHS for m in ("get", "post")]
    assert len(requests) > 200

    router = site.app.router
    assert isinstance(router.middleware_stack, SegmentDispatch)
    indexed = await answers(site, requests)
    dispatch = router.middleware_stack
    router.middleware_stack = router.app
    try:
        scanned = await answers(site, requests)
    finally:
        router.middleware_stack = dispatch
    assert indexed == scanned
    assert {status for *_, status, _, _ in indexed} >= {401, 404, 405}


async def test_a_route_added_later_is_served(site: InProcessSite) -> None:
    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    site.app.router.routes.append(Route("/late/hello", hello))
    r = await site.client.get("/late/hello")
    assert r.status_code == 200
    assert r.text == "hello"
    r = await site.client.get("/late/nothing")
    assert r.status_code == 404
