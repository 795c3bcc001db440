"""Fixtures shared by every test layer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from edgefed.testkit.inprocess import InProcessSite, run_site, site_settings
from edgefed.testkit.osc import OpenStackCLI
from edgefed.testkit.process import SiteProcess


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[InProcessSite]:
    """One site in this process (SQLite in tmp_path), reached through ASGITransport."""
    async with run_site(site_settings(tmp_path / "berlin")) as s:
        yield s


@pytest.fixture
async def admin_headers(site: InProcessSite) -> dict[str, str]:
    return {"X-Auth-Token": await site.token()}


@pytest.fixture(scope="module")
def site_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SiteProcess]:
    """One real site process on loopback, shared by a test module."""
    proc = SiteProcess(name="Berlin", data_dir=tmp_path_factory.mktemp("berlin")).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def osc(site_process: SiteProcess) -> OpenStackCLI:
    return OpenStackCLI(auth_url=site_process.auth_url, password=site_process.password)
