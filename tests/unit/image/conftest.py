"""Helpers for the image tests: callers from other projects, with chosen roles.

Tokens are signed with the site's own key (the same path Keystone's tokens take), so
policy is tested without creating users through the identity API.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from edgefed.testkit.inprocess import InProcessSite

Minter = Callable[..., dict[str, str]]


@pytest.fixture
def project_headers(site: InProcessSite) -> Minter:
    def mint(project_id: str, *roles: str) -> dict[str, str]:
        ctx = site.app.state.ctx
        now = time.time()
        user_id = uuid.uuid4().hex
        claims: dict[str, Any] = {
            "iss": ctx.name,
            "iat": now,
            "exp": now + 600,
            "jti": uuid.uuid4().hex,
            "chain": uuid.uuid4().hex,
            "methods": ["password"],
            "user": {
                "id": user_id,
                "name": f"u-{user_id[:6]}",
                "domain": {"id": "default", "name": "Default"},
            },
            "project": {
                "id": project_id,
                "name": project_id,
                "domain": {"id": "default", "name": "Default"},
            },
            "roles": [{"id": r, "name": r} for r in (roles or ("member", "reader"))],
        }
        return {"X-Auth-Token": ctx.signer.sign(claims)}

    return mint


NewImage = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def new_image(site: InProcessSite, admin_headers: dict[str, str]) -> NewImage:
    async def create(headers: dict[str, str] | None = None, **body: Any) -> dict[str, Any]:
        doc = {"name": "img", "disk_format": "qcow2", "container_format": "bare", **body}
        r = await site.client.post("/image/v2/images", json=doc, headers=headers or admin_headers)
        assert r.status_code == 201, r.text
        return r.json()

    return create
