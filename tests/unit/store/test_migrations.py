"""Migrations: a new database migrated to the head holds exactly the tables the code
declares (an added column without its migration fails here), with the change-log
triggers of every synchronisable table; a database from a newer edgefed is refused
rather than opened half-understood."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

import edgefed.store.tables  # noqa: F401 - every table in the metadata
from edgefed.store.engine import Store
from edgefed.store.migrate import head_revision, sqlite_file, sqlite_needs_upgrade
from edgefed.store.schema import metadata
from edgefed.store.sync.kinds import KINDS
from edgefed.store.sync.triggers import capture_ddl


async def test_the_migrated_schema_is_the_declared_one(store: Store) -> None:
    def differences(conn: Any) -> list[Any]:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))

    async with store.read() as conn:
        assert await conn.run_sync(differences) == []


async def test_every_declared_table_exists_with_its_columns(store: Store) -> None:
    def columns(conn: Any) -> dict[str, set[str]]:
        found = inspect(conn)
        return {t: {c["name"] for c in found.get_columns(t)} for t in found.get_table_names()}

    async with store.read() as conn:
        held = await conn.run_sync(columns)
    for table in metadata.sorted_tables:
        assert table.name in held, table.name
        assert held[table.name] == {c.name for c in table.columns}, table.name


async def installed_triggers(store: Store) -> set[str]:
    async with store.read() as conn:
        if store.is_sqlite:
            query = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        else:
            query = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
        return {str(row[0]) for row in await conn.execute(text(query))}


async def test_every_synchronisable_table_has_its_capture_triggers(store: Store) -> None:
    dialect = "sqlite" if store.is_sqlite else "postgresql"
    expected = {
        statement.split()[2]
        for statement in capture_ddl(dialect)
        if statement.lstrip().startswith("CREATE TRIGGER")
    }
    per_table = 3 if store.is_sqlite else 1  # insert, update, delete; or one for all
    assert len(expected) == per_table * len(KINDS)
    assert expected <= await installed_triggers(store)
    for kind in KINDS.values():
        assert any(kind.table.name in name for name in expected), kind.name


async def test_the_database_records_the_head_revision(store: Store) -> None:
    async with store.read() as conn:
        versions = [
            r[0] for r in await conn.execute(text("SELECT version_num FROM alembic_version"))
        ]
    assert versions == [head_revision()]


async def test_a_database_from_a_newer_edgefed_is_refused_untouched(store_url: str) -> None:
    first = await Store.open(store_url)
    try:
        async with first.write() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '0999_future'"))
    finally:
        await first.close()
    with pytest.raises(Exception, match="0999_future"):
        await Store.open(store_url)
    if store_url.startswith("sqlite"):  # nothing was changed by the refused open
        path = store_url.removeprefix("sqlite:///")
        with contextlib.closing(sqlite3.connect(path)) as db:
            assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [
                ("0999_future",)
            ]


async def test_a_refused_open_leaves_no_connection_behind(store_url: str) -> None:
    if store_url.startswith("sqlite"):
        pytest.skip("a PostgreSQL server counts the connections it serves")
    import asyncpg

    first = await Store.open(store_url)
    try:
        async with first.write() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '0999_future'"))
    finally:
        await first.close()
    with pytest.raises(Exception, match="0999_future"):
        await Store.open(store_url)
    db = await asyncpg.connect(store_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        others = await db.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await db.close()
    assert others == 0


def test_a_serving_site_migrates_sqlite_in_a_process_of_its_own(tmp_path: Path) -> None:
    """``python -m edgefed.store.migrate`` brings a new database to the head; the check a
    serving site makes first (``sqlite_needs_upgrade``) tells a database below it."""
    path = tmp_path / "site.db"
    assert sqlite_file(f"sqlite:///{path}") == sqlite_file(f"sqlite+aiosqlite:///{path}") == path
    assert sqlite_file("sqlite:///:memory:") is None
    assert sqlite_file("postgresql+asyncpg://u@127.0.0.1/db") is None
    assert sqlite_needs_upgrade(path)  # none yet
    done = subprocess.run(
        [sys.executable, "-m", "edgefed.store.migrate", f"sqlite:///{path}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert not sqlite_needs_upgrade(path)
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchone() == (
            head_revision(),
        )
        db.execute("UPDATE alembic_version SET version_num = 'older'")
        db.commit()
    assert sqlite_needs_upgrade(path)
    (tmp_path / "broken.db").write_bytes(b"not a database" * 100)
    assert sqlite_needs_upgrade(tmp_path / "broken.db")
    usage = subprocess.run(
        [sys.executable, "-m", "edgefed.store.migrate"], capture_output=True, text=True, timeout=60
    )
    assert usage.returncode == 2 and "usage" in usage.stderr
