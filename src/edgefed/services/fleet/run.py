"""Remote control: run one API call on a set of sites and get every site's result.

``POST /edge/v1/fleet/run`` with ``{"run": {"scope": "@region=eu", "method": "POST",
"path": "/compute/v2.1/flavors", "body": {...}}}``. The call is handed to this site's
own app with ``X-Scope: {<service>: <scope>}``, so the scope router does the fan-out
with its usual rules (a write must succeed everywhere, or the answer lists every
site's status); this module adds what the router cannot know: whether the caller may
act on every site the scope reaches (region operators: a 403 naming the sites outside
the region), and a uniform per-site result list for the CLI and the dashboard.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import httpx
import orjson
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from edgefed.api.auth import Principal, current_principal
from edgefed.api.context import site_context
from edgefed.api.responses import Json
from edgefed.api.service import DeclaredRoute
from edgefed.core.errors import BadRequest, ValidationFailed
from edgefed.core.scope import parse_expr
from edgefed.core.scope_resolve import sites_of
from edgefed.services.fleet.access import require_all

router = APIRouter(route_class=DeclaredRoute)

RESULTS_KEY = "os-scope:results"
SITE_HEADER = "x-edgefed-site"
SERVICES = (
    ("/compute/", "compute"),
    ("/image/", "image"),
    ("/network/", "network"),
    ("/volume/", "volume"),
    ("/identity/", "identity"),
    ("/edge/", "fleet"),
)
RUN_TIMEOUT = 60.0


class RunSpec(BaseModel):
    model_config = {"extra": "forbid"}
    scope: str = Field(min_length=1, max_length=1000)
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
    path: str = Field(min_length=2, max_length=2000, pattern=r"^/")
    body: Any = None


class RunBody(BaseModel):
    model_config = {"extra": "forbid"}
    run: RunSpec


def service_of(path: str) -> str:
    for prefix, service in SERVICES:
        if path.startswith(prefix):
            return service
    raise ValidationFailed(
        f"path {path!r} belongs to no API of the site (/compute, /image, /network, "
        "/volume, /identity or /edge)",
        field="path",
    )


def per_site(response: httpx.Response, body: Any, sites: tuple[str, ...]) -> list[dict[str, Any]]:
    """Every site's status: the router's ``os-scope:results`` when it composed an
    answer, else the sites that answered (its ``X-Edgefed-Site`` header, or this site)."""
    if isinstance(body, dict) and isinstance(body.get(RESULTS_KEY), list):
        return [dict(r) for r in body[RESULTS_KEY]]
    answered = [s for s in response.headers.get(SITE_HEADER, "").split(",") if s]
    result: dict[str, Any] = {"status": response.status_code}
    if response.status_code >= 400:
        result["error"] = _message(body) or response.reason_phrase
    return [{"site": s, **result} for s in (answered or list(sites[:1]))]


def _message(body: Any) -> str:
    if isinstance(body, dict):
        for value in body.values():
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return str(value["message"])
    return ""


@router.post("/edge/v1/fleet/run")
async def run(
    request: Request,
    spec_body: RunBody,
    principal: Annotated[Principal, Depends(current_principal)],
) -> Json:
    ctx = site_context(request)
    spec = spec_body.run
    service = service_of(spec.path)
    if ctx.fleet is None:
        raise BadRequest("this site has no fleet registry yet")
    try:
        sites = sites_of(parse_expr(spec.scope), ctx.fleet)
    except BadRequest as exc:
        raise ValidationFailed(
            f"Invalid scope {spec.scope!r}: {exc.message}", field="scope"
        ) from exc
    require_all(ctx, principal, sites, f"run {spec.method} {spec.path}")
    headers = {"X-Auth-Token": principal.token, "X-Scope": f"{{{service}: {spec.scope}}}"}
    content = None
    if spec.body is not None:
        content = orjson.dumps(spec.body)
        headers["Content-Type"] = "application/json"
    for name in ("OpenStack-API-Version", "X-OpenStack-Nova-API-Version"):
        if name in request.headers:
            headers[name] = request.headers[name]
    transport = httpx.ASGITransport(app=request.app)
    async with httpx.AsyncClient(transport=transport, base_url=ctx.public_url) as client:
        response = await client.request(
            spec.method, spec.path, content=content, headers=headers, timeout=RUN_TIMEOUT
        )
    try:
        body = response.json() if response.content else None
    except ValueError:
        body = response.text[:2000]
    results = per_site(response, body, sites)
    ok = response.status_code < 400 and all(r.get("status", 500) < 400 for r in results)
    return Json(
        {
            "run": {
                "scope": spec.scope,
                "sites": list(sites),
                "method": spec.method,
                "path": spec.path,
                "status": response.status_code,
                "ok": ok,
                "results": results,
                "body": body,
            }
        }
    )
