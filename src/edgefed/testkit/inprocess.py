"""A site app in this process, with its lifespan run, reached through ASGITransport.

A test suite starts a site for most of its tests, and what a new site costs is mostly
the same work every time: FastAPI analysing every route's endpoint, and migrating an
empty database. The sites of one process share one ``Blueprint`` (the services and
their routes; the state of each site is its own), and a new SQLite site starts from a
copy of a database migrated once per process, as ``tests/unit/store`` does. A data
directory that already holds a database (a site started again) keeps it; a site on
PostgreSQL gets its database from the caller (``tests/conftest.py``).
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import sqlite3
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from edgefed.app import Blueprint, build_blueprint, create_app
from edgefed.core.settings import SiteSettings
from edgefed.store.engine import Store
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


_blueprint: Blueprint | None = None
_template: Path | None = None


def shared_blueprint() -> Blueprint:
    """The services and routes every in-process site of this process is built from."""
    global _blueprint
    if _blueprint is None:
        _blueprint = build_blueprint()
    return _blueprint


async def migrated_sqlite() -> Path:
    """A SQLite database migrated to the head, once per process: one self-contained
    file (no WAL beside it) for new sites to copy."""
    global _template
    if _template is None:
        folder = Path(tempfile.mkdtemp(prefix="edgefed-template-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        path = folder / "site.db"
        store = await Store.open(f"sqlite:///{path}")
        await store.close()
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.execute("PRAGMA journal_mode=DELETE")
        _template = path
    return _template


async def _seed_database(settings: SiteSettings) -> None:
    """Give a new SQLite site in its data directory a copy of the migrated database."""
    if settings.database_url:
        return
    path = Path(settings.effective_database_url.removeprefix("sqlite:///"))
    if path.exists():
        return
    template = await migrated_sqlite()
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, path)


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
    await _seed_database(settings)
    app = create_app(settings, blueprint=shared_blueprint(), **kwargs)
    async with app.router.lifespan_context(app):
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=settings.public_url or "http://site"
        )
        async with client:
            yield InProcessSite(app=app, client=client, settings=settings)
