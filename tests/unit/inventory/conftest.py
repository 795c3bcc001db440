"""Fixtures of the inventory tests: a site with a fake clock, and admin tokens signed by
the site's own key (the inventory only needs a valid admin token, not Keystone)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from inventory_support import FakeClock, signed_token

from edgefed.testkit.inprocess import InProcessSite, run_site, site_settings


@pytest.fixture
def sign():
    """Signs a token for a site with the given roles: ``sign(site, roles=(...))``."""
    return signed_token


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def _site(tmp_path: Path, clock: FakeClock, **overrides: Any) -> AsyncIterator[InProcessSite]:
    settings = site_settings(tmp_path / "site", host_heartbeat_timeout_seconds=30.0, **overrides)
    async with run_site(settings, clock=clock) as s:
        yield s


@pytest.fixture
async def inv_site(tmp_path: Path, clock: FakeClock) -> AsyncIterator[InProcessSite]:
    """A site whose management network is dynamic (192.168.204.0/24, the default)."""
    async for s in _site(tmp_path, clock, management_pool="192.168.204.10-192.168.204.12"):
        yield s


@pytest.fixture
async def static_site(tmp_path: Path, clock: FakeClock) -> AsyncIterator[InProcessSite]:
    """A site whose management network is static: every host is given its address."""
    async for s in _site(
        tmp_path, clock, management_dynamic=False, management_subnet="10.9.0.0/24"
    ):
        yield s


@pytest.fixture
def admin(inv_site: InProcessSite) -> dict[str, str]:
    return {"X-Auth-Token": signed_token(inv_site)}


@pytest.fixture
def static_admin(static_site: InProcessSite) -> dict[str, str]:
    return {"X-Auth-Token": signed_token(static_site)}
