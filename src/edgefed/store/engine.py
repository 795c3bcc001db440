"""The site's database: SQLite in WAL mode by default, PostgreSQL by URL, same code.

SQLite allows one writer at a time; instead of letting concurrent requests collide on
``database is locked``, every write transaction takes one asyncio lock (``Store.write``),
so writes queue in the process and reads never wait for them (WAL). With PostgreSQL
the lock is not taken and the server arbitrates.

A transaction committed by ``write()`` is on disk before the caller answers, so a 2xx
answer survives ``kill -9`` (and, with ``synchronous=FULL``, a power cut).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from edgefed.store.migrate import upgrade_to_head


class Store:
    def __init__(self, engine: AsyncEngine, *, is_sqlite: bool):
        self.engine = engine
        self.is_sqlite = is_sqlite
        self._write_lock = asyncio.Lock() if is_sqlite else None

    @classmethod
    async def open(cls, url: str, *, sqlite_synchronous: str = "FULL") -> Store:
        parsed = make_url(url)
        is_sqlite = parsed.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {}
        if is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            kwargs["pool_size"] = 10
            kwargs["max_overflow"] = 10
            kwargs["pool_pre_ping"] = True
        if is_sqlite and (not parsed.database or parsed.database == ":memory:"):
            kwargs["poolclass"] = NullPool
        engine = create_async_engine(url, **kwargs)
        if is_sqlite:
            _install_sqlite_pragmas(engine, sqlite_synchronous)
        store = cls(engine, is_sqlite=is_sqlite)
        await store.migrate()
        return store

    async def migrate(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(upgrade_to_head)

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction, committed (durably) when the block exits without error."""
        if self._write_lock is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        async with self._write_lock, self.engine.begin() as conn:
            yield conn

    async def close(self) -> None:
        await self.engine.dispose()


def _install_sqlite_pragmas(engine: AsyncEngine, synchronous: str) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()
