"""Fixtures of the compute tests (helpers live in compute_testkit)."""

from __future__ import annotations

import pytest
from compute_testkit import V, make_image

from edgefed.testkit.inprocess import InProcessSite


@pytest.fixture
async def image_id(site: InProcessSite) -> str:
    return await make_image(site)


@pytest.fixture
def h(admin_headers: dict[str, str]) -> dict[str, str]:
    """Admin headers at the highest microversion."""
    return {**admin_headers, **V}
