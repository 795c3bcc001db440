"""The dashboard at ``/dashboard``: static HTML, CSS and ES modules, no build step.

Everything the page needs comes from this site (no CDN, no map tiles: nothing outside
the fleet can be reached). The page logs in against this site's own Keystone
(``/identity/v3/auth/tokens``) and polls the fleet API with that token, so a region
operator's dashboard shows exactly what the API shows that operator.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter, Request
from starlette.responses import FileResponse, RedirectResponse, Response

from edgefed.api.service import DeclaredRoute
from edgefed.core.errors import NotFound

router = APIRouter(include_in_schema=False, route_class=DeclaredRoute)

STATIC = Path(str(resources.files("edgefed.web") / "static"))
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'"
    ),
    "X-Content-Type-Options": "nosniff",
}


@router.get("/dashboard")
async def dashboard_root() -> Response:
    return RedirectResponse("/dashboard/", status_code=307)


@router.get("/dashboard/")
async def dashboard_index(request: Request) -> Response:
    return _file(request, "index.html")


@router.get("/dashboard/{name}")
async def dashboard_asset(request: Request, name: str) -> Response:
    return _file(request, name)


def _file(request: Request, name: str) -> Response:
    """The file, or 304 when the browser's copy is current: ``no-cache`` makes it ask
    each time with the ETag it holds, and an unchanged file is not sent again."""
    path = (STATIC / name).resolve()
    suffix = path.suffix
    if path.parent != STATIC.resolve() or suffix not in MEDIA_TYPES or not path.is_file():
        raise NotFound(f"The dashboard has no file {name!r}.")
    response = FileResponse(
        path, media_type=MEDIA_TYPES[suffix], headers=HEADERS, stat_result=path.stat()
    )
    etag = response.headers["etag"]
    held = {tag.strip() for tag in request.headers.get("if-none-match", "").split(",")}
    if etag in held or "*" in held:
        return Response(status_code=304, headers={**HEADERS, "ETag": etag})
    return response
