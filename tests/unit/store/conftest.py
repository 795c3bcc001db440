"""The store's unit tests: a bare migrated store per test, without a site around it.

SQLite by default, a fresh PostgreSQL database with ``--database=postgres``; a test that
reopens the same database asks for ``store_url``. On SQLite each test starts from a copy
of one database migrated once per session: reopening a migrated database costs
milliseconds, migrating a new one most of a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edgefed.store.engine import Store


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "site.db"

    async def migrate() -> None:
        store = await Store.open(f"sqlite:///{path}")
        await store.close()

    asyncio.run(migrate())
    # One self-contained file to copy: the WAL folded in, whatever connection lingers.
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA journal_mode=DELETE")
        tables = db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'")
        assert tables.fetchone()[0] > 1, "the template database was not migrated"
    return path


@pytest.fixture
def store_url(tmp_path: Path, database_url: str | None, migrated_sqlite: Path) -> str:
    if database_url is not None:
        return database_url
    copy = tmp_path / "site.db"
    shutil.copyfile(migrated_sqlite, copy)
    return f"sqlite:///{copy}"


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(store_url)
    try:
        yield opened
    finally:
        await opened.close()
