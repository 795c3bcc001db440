"""The dashboard's routes: its own files, served from this site with the headers that
keep the page to itself, nothing else from its directory; and the APIs its script
polls answer at the site that serves it."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import FastAPI

from edgefed.api import faults
from edgefed.core.errors import EdgefedError
from edgefed.testkit.inprocess import InProcessSite
from edgefed.testkit.inprocess_fleet import admin
from edgefed.web.dashboard import STATIC, router


def dashboard_app() -> FastAPI:
    app = FastAPI()
    app.include_router(router)
    app.add_exception_handler(EdgefedError, faults.handle_edgefed_error)
    return app


async def get(path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=dashboard_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://site") as client:
        return await client.get(path, follow_redirects=False)


async def test_the_bare_path_redirects_to_the_page() -> None:
    r = await get("/dashboard")
    assert (r.status_code, r.headers["location"]) == (307, "/dashboard/")


async def test_the_page_and_its_assets_are_served_with_their_types_and_policy() -> None:
    page = await get("/dashboard/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.text == (STATIC / "index.html").read_text()
    assets = re.findall(r'(?:href|src)="(/dashboard/[^"]+)"', page.text)
    assert sorted(assets) == ["/dashboard/app.js", "/dashboard/style.css"]
    types = {"/dashboard/app.js": "text/javascript", "/dashboard/style.css": "text/css"}
    for asset in assets:
        r = await get(asset)
        assert r.status_code == 200, asset
        assert r.headers["content-type"] == f"{types[asset]}; charset=utf-8"
    for r in (page, await get("/dashboard/app.js")):
        assert r.headers["cache-control"] == "no-cache"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["content-security-policy"].startswith("default-src 'self'")


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/nothing.js",
        "/dashboard/index.htm",
        "/dashboard/__init__.py",
        "/dashboard/..%2Fdashboard.py",
        "/dashboard/%2E%2E%2F%2E%2E%2Fapp.py",
        "/dashboard/static",
    ],
)
async def test_nothing_else_is_served(path: str) -> None:
    r = await get(path)
    assert r.status_code == 404
    if "%2F" not in path:  # a name with a slash matches no dashboard route at all
        assert "The dashboard has no file" in r.json()["error"]["message"]


async def test_a_file_beside_the_dashboard_with_a_served_suffix_is_not_reachable() -> None:
    # dashboard.py lives one directory up: a path that climbs out is refused.
    r = await get("/dashboard/..%2F__init__.py")
    assert r.status_code == 404


async def test_the_site_serves_the_page_without_a_token(site: InProcessSite) -> None:
    r = await site.client.get("/dashboard/")
    assert r.status_code == 200 and "<script" in r.text


async def test_every_api_the_script_polls_answers_with_a_token(site: InProcessSite) -> None:
    script = (STATIC / "app.js").read_text()
    polled = sorted(set(re.findall(r'api\("(/[^"]+)"\)', script)))
    assert "/edge/v1/fleet/status" in polled
    for path in polled:
        r = await site.client.get(path, headers=admin(site))
        assert r.status_code == 200, (path, r.text)
        assert (await site.client.get(path)).status_code == 401
    assert '"/identity/v3/auth/tokens"' in script


async def get_with(path: str, headers: dict[str, str]) -> httpx.Response:
    transport = httpx.ASGITransport(app=dashboard_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://site") as client:
        return await client.get(path, headers=headers, follow_redirects=False)


@pytest.mark.parametrize("path", ["/dashboard/", "/dashboard/app.js", "/dashboard/style.css"])
async def test_a_browser_revalidating_a_current_copy_gets_304_and_no_body(path: str) -> None:
    first = await get(path)
    etag = first.headers["etag"]
    assert first.status_code == 200 and etag.startswith('"')
    again = await get_with(path, {"If-None-Match": etag})
    assert (again.status_code, again.content) == (304, b"")
    assert again.headers["etag"] == etag
    # The policy headers come with the 304 too: the browser keeps revalidating.
    assert again.headers["cache-control"] == "no-cache"
    assert again.headers["content-security-policy"] == first.headers["content-security-policy"]
    # One of several tags, or any.
    for held in (f'"old", {etag}', "*"):
        assert (await get_with(path, {"If-None-Match": held})).status_code == 304


async def test_a_stale_or_foreign_tag_gets_the_file_again() -> None:
    fresh = await get_with("/dashboard/app.js", {"If-None-Match": '"stale"'})
    assert fresh.status_code == 200
    assert fresh.content == (STATIC / "app.js").read_bytes()
    # Another file's tag is no match for this one.
    css_tag = (await get("/dashboard/style.css")).headers["etag"]
    r = await get_with("/dashboard/app.js", {"If-None-Match": css_tag})
    assert r.status_code == 200


async def test_a_missing_file_is_404_whatever_tag_is_sent() -> None:
    r = await get_with("/dashboard/nothing.js", {"If-None-Match": "*"})
    assert r.status_code == 404


async def test_the_site_answers_a_revalidation_with_304(site: InProcessSite) -> None:
    first = await site.client.get("/dashboard/app.js")
    r = await site.client.get("/dashboard/app.js", headers={"If-None-Match": first.headers["etag"]})
    assert (r.status_code, r.content) == (304, b"")
