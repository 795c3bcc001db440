"""Fixtures of the sync tests (helpers are in sync_support.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import insert

from edgefed.store.compute import FlavorRepository
from edgefed.store.engine import Store
from edgefed.store.identity import domains
from edgefed.store.sync import SyncRepository
from edgefed.testkit.inprocess import InProcessSite


@pytest.fixture
async def berlin(site: InProcessSite) -> tuple[InProcessSite, SyncRepository]:
    """A site with three flavors (f0, f1, f2) to push, and its sync repository."""
    flavors = FlavorRepository(site.app.state.ctx.store)
    for n in range(3):
        await flavors.create(
            values={"id": f"f{n}", "name": f"f{n}", "vcpus": 1, "ram": 64, "disk": 0}
        )
    return site, SyncRepository(site.app.state.ctx.store)


@pytest.fixture
async def repo(tmp_path: Path, database_url: str | None) -> AsyncIterator[SyncRepository]:
    """The sync tables of a bare store (no site), with the default domain that received
    projects belong to."""
    store = await Store.open(database_url or f"sqlite:///{tmp_path / 'site.db'}")
    async with store.write() as conn:
        await conn.execute(insert(domains).values(id="default", name="Default"))
    try:
        yield SyncRepository(store)
    finally:
        await store.close()
