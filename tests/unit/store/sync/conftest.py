"""A bare migrated store per test (SQLite, or PostgreSQL with --database=postgres): the
sync repositories are exercised at their own level, without a site around them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edgefed.store.engine import Store


@pytest.fixture
async def store(tmp_path: Path, database_url: str | None) -> AsyncIterator[Store]:
    opened = await Store.open(database_url or f"sqlite:///{tmp_path / 'site.db'}")
    try:
        yield opened
    finally:
        await opened.close()
