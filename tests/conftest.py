"""Fixtures shared by every test layer.

``pytest --database=postgres`` runs the same tests on PostgreSQL: a throw-away server
is started once for the session and every site gets a fresh database (a copy of one
migrated once). Tests that open no database on that server (their fixtures never ask
for ``postgres_server``) are deselected there: they would run exactly as on SQLite.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from edgefed.services.identity import passwords
from edgefed.testkit.inprocess import InProcessSite, run_site, site_settings
from edgefed.testkit.osc import OpenStackCLI
from edgefed.testkit.postgres import PostgresServer
from edgefed.testkit.process import SiteProcess


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--database",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="run the sites of the suite on SQLite (default) or on a PostgreSQL server",
    )


def pytest_configure(config: pytest.Config) -> None:
    # Every in-process site hashes its admin's password and most tests log in: at the
    # product's cost (OWASP's argon2id, 19 MiB and 2 passes, 50-250 ms each) that was a
    # twentieth of the suite. Here new hashes take argon2's least cost; a hash names its
    # own cost, so one made at the product's verifies all the same (test_hostile_sync).
    passwords._HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--database") != "postgres":
        return
    # A test none of whose fixtures asks for the server runs on SQLite in this pass too:
    # it already ran, unchanged, in the SQLite pass.
    on_sqlite = [i for i in items if "postgres_server" not in getattr(i, "fixturenames", ())]
    if on_sqlite:
        config.hook.pytest_deselected(items=on_sqlite)
        items[:] = [i for i in items if "postgres_server" in getattr(i, "fixturenames", ())]


@pytest.fixture(scope="session")
def postgres_server(request: pytest.FixtureRequest) -> Iterator[PostgresServer | None]:
    if request.config.getoption("--database") != "postgres":
        yield None
        return
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


def new_database_url(server: PostgresServer | None) -> str | None:
    """A fresh database migrated to the head on the suite's PostgreSQL server, or None
    for SQLite."""
    if server is None:
        return None
    return server.migrated_database(f"t_{uuid.uuid4().hex[:16]}")


@pytest.fixture
def database_url(postgres_server: PostgresServer | None) -> str | None:
    return new_database_url(postgres_server)


@pytest.fixture
async def site(tmp_path: Path, database_url: str | None) -> AsyncIterator[InProcessSite]:
    """One site in this process, reached through ASGITransport."""
    async with run_site(site_settings(tmp_path / "berlin", database_url=database_url)) as s:
        yield s


@pytest.fixture
async def admin_headers(site: InProcessSite) -> dict[str, str]:
    return {"X-Auth-Token": await site.token()}


@pytest.fixture(scope="module")
def site_process(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer | None
) -> Iterator[SiteProcess]:
    """One real site process on loopback, shared by a test module."""
    proc = SiteProcess(
        name="Berlin",
        data_dir=tmp_path_factory.mktemp("berlin"),
        database_url=new_database_url(postgres_server),
    ).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def osc(site_process: SiteProcess) -> OpenStackCLI:
    return OpenStackCLI(auth_url=site_process.auth_url, password=site_process.password)
