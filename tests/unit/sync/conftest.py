"""Fixtures of the sync tests (helpers are in sync_support.py)."""

from __future__ import annotations

import pytest

from edgefed.store.compute import FlavorRepository
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
