"""Fixtures of the compute tests (helpers live in compute_testkit)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from compute_testkit import V, make_image, two_host_settings

from edgefed.testkit.inprocess import InProcessSite, run_site


@pytest.fixture
async def image_id(site: InProcessSite) -> str:
    return await make_image(site)


@pytest.fixture
def h(admin_headers: dict[str, str]) -> dict[str, str]:
    """Admin headers at the highest microversion."""
    return {**admin_headers, **V}


@pytest.fixture
async def two_hosts(tmp_path: Path, database_url: str | None) -> AsyncIterator[InProcessSite]:
    """A site of two fake hosts (``two_host_settings``)."""
    async with run_site(two_host_settings(tmp_path / "site", database_url)) as site:
        yield site
