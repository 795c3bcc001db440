"""A site app in this process, with its lifespan run, reached through ASGITransport."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from edgefed.app import create_app
from edgefed.core.settings import SiteSettings
from edgefed.testkit.auth import password_auth

ADMIN_PASSWORD = "admin-secret"


def site_settings(data_dir: Path, *, name: str = "Berlin", **overrides: Any) -> SiteSettings:
    values: dict[str, Any] = {
        "name": name,
        "data_dir": data_dir,
        "admin_password": ADMIN_PASSWORD,
        "port": 0,
        "public_url": f"http://{name.lower()}.test",
        "fake_transition_seconds": 0.0,
        "sqlite_synchronous": "NORMAL",
        # In-process sites gossip when a test says so: catching up is tested on its own.
        "revocation_staleness_seconds": 0.0,
    }
    values.update(overrides)
    return SiteSettings(**values)


@dataclass
class InProcessSite:
    app: FastAPI
    client: httpx.AsyncClient
    settings: SiteSettings

    async def token(
        self, user: str = "admin", password: str = ADMIN_PASSWORD, project: str | None = "admin"
    ) -> str:
        r = await self.client.post(
            "/identity/v3/auth/tokens", json=password_auth(user, password, project)
        )
        assert r.status_code == 201, r.text
        return r.headers["x-subject-token"]


@contextlib.asynccontextmanager
async def run_site(
    settings: SiteSettings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], float] | None = None,
) -> AsyncIterator[InProcessSite]:
    kwargs: dict[str, Any] = {"transport": transport}
    if clock is not None:
        kwargs["clock"] = clock
    app = create_app(settings, **kwargs)
    async with app.router.lifespan_context(app):
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=settings.public_url or "http://site"
        )
        async with client:
            yield InProcessSite(app=app, client=client, settings=settings)
