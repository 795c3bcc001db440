"""Helpers shared by the volume tests: callers of chosen projects and roles, the
requests every test makes at a chosen microversion, and Cinder's fault shape checked
in one place.

Tokens are signed with the site's own key (``forge_token``); ``alpha`` and ``beta``
are projects.
"""

from __future__ import annotations

from typing import Any

import httpx

from edgefed.core.ids import predictable_id
from edgefed.testkit.inprocess import InProcessSite
from edgefed.testkit.tokens import forge_token

V = "/volume/v3"
Headers = dict[str, str]
LATEST = "3.71"


def as_(
    site: InProcessSite, role: str = "member", project: str = "alpha", version: str = LATEST
) -> Headers:
    """A caller with ``role`` on ``project``, asking for microversion ``version``."""
    ctx = site.app.state.ctx
    token = forge_token(ctx, user=f"{role}-{project}", project=project, role=role)
    return {"X-Auth-Token": token, "OpenStack-API-Version": f"volume {version}"}


def admin(site: InProcessSite, version: str = LATEST) -> Headers:
    return as_(site, "admin", "admin", version)


def project_id(name: str) -> str:
    return predictable_id("project", name)


async def post(site: InProcessSite, h: Headers, path: str, body: Any) -> httpx.Response:
    return await site.client.post(f"{V}/{path}", json=body, headers=h)


async def put(site: InProcessSite, h: Headers, path: str, body: Any) -> httpx.Response:
    return await site.client.put(f"{V}/{path}", json=body, headers=h)


async def get(site: InProcessSite, h: Headers, path: str) -> httpx.Response:
    return await site.client.get(f"{V}/{path}", headers=h)


async def delete(site: InProcessSite, h: Headers, path: str) -> httpx.Response:
    return await site.client.delete(f"{V}/{path}", headers=h)


async def action(
    site: InProcessSite, h: Headers, volume_id: str, name: str, args: Any = None
) -> httpx.Response:
    return await post(site, h, f"volumes/{volume_id}/action", {name: args})


async def volume(site: InProcessSite, h: Headers, size: int = 1, **body: Any) -> dict[str, Any]:
    """A new volume (202 asserted)."""
    r = await post(site, h, "volumes", {"volume": {"size": size, **body}})
    assert r.status_code == 202, r.text
    return r.json()["volume"]  # type: ignore[no-any-return]


async def snapshot(site: InProcessSite, h: Headers, volume_id: str, **body: Any) -> dict[str, Any]:
    r = await post(site, h, "snapshots", {"snapshot": {"volume_id": volume_id, **body}})
    assert r.status_code == 202, r.text
    return r.json()["snapshot"]  # type: ignore[no-any-return]


async def shown(site: InProcessSite, h: Headers, path: str, key: str) -> dict[str, Any]:
    r = await get(site, h, path)
    assert r.status_code == 200, r.text
    return r.json()[key]  # type: ignore[no-any-return]


FAULT_KEYS = {
    400: "badRequest",
    403: "forbidden",
    404: "itemNotFound",
    406: "notAcceptable",
    409: "conflictingRequest",
    413: "overLimit",
}


def fault(r: httpx.Response, status: int, message: str = "") -> None:
    """``r`` is Cinder's fault: ``status``, ``message`` in its message."""
    assert r.status_code == status, r.text
    body = r.json()[FAULT_KEYS[status]]
    assert body["code"] == status, body
    assert message in body["message"], body
