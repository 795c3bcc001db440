"""The site's database: SQLite in WAL mode by default, PostgreSQL by URL, same code.

SQLite allows one writer at a time; instead of letting concurrent requests collide on
``database is locked``, every write transaction takes one asyncio lock (``Store.write``),
so writes queue in the process and reads never wait for them (WAL). With PostgreSQL
the lock is not taken and the server arbitrates.

A transaction committed by ``write()`` is on disk before the caller answers, so a 2xx
answer survives ``kill -9`` (and, with ``synchronous=FULL``, a power cut).

The asyncio side is SQLAlchemy's own mechanism (a sync ``Engine`` on an asyncio driver,
each call run by ``greenlet_spawn``) without ``sqlalchemy.ext.asyncio``, which imports
the ORM: the store uses Core only, and the ORM costs an idle site ≈ 7 MiB. Likewise the
PostgreSQL dialect is imported only on PostgreSQL (``upsert_insert``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Table, create_engine, event
from sqlalchemy.engine import Connection, CursorResult, Engine, make_url
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.base import Executable
from sqlalchemy.util.concurrency import greenlet_spawn

from edgefed.store.migrate import upgrade_to_head

_T = TypeVar("_T")
_Rows = tuple[Any, ...]
_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


class AsyncConnection:
    """The part of SQLAlchemy's ``AsyncConnection`` the store uses.

    Results are buffered by the asyncio drivers, so ``CursorResult`` methods
    (``first``, ``scalar``, ``mappings``, ``rowcount``, …) are plain calls afterwards.
    """

    __slots__ = ("sync_connection",)

    def __init__(self, sync_connection: Connection):
        self.sync_connection = sync_connection

    @property
    def dialect(self) -> Any:
        return self.sync_connection.dialect

    async def execute(self, statement: Executable, parameters: Any = None) -> CursorResult[*_Rows]:
        result: CursorResult[*_Rows] = await greenlet_spawn(
            self.sync_connection.execute, statement, parameters, _require_await=True
        )
        soft_close = getattr(result.cursor, "_async_soft_close", None)
        if soft_close is not None:
            await soft_close()
        return result

    async def run_sync(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Run ``fn(sync_connection, *args, **kwargs)`` where it may use the sync API."""
        return await greenlet_spawn(fn, self.sync_connection, *args, **kwargs)


async def _run_to_completion(coro: Coroutine[Any, Any, _T]) -> _T:
    """Finish a clean-up (closing a connection) even if the caller is cancelled meanwhile;
    the cancellation is re-raised once it is done, as SQLAlchemy's own context managers do,
    so that a connection is never handed back to a pool half-closed."""
    task = asyncio.ensure_future(coro)
    cancelled: BaseException | None = None
    for _ in range(1000):
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError as err:
            if task.done():
                raise
            cancelled = err
            continue
        if cancelled is not None:
            raise cancelled
        return result
    return await task


class Store:
    def __init__(self, engine: Engine, *, is_sqlite: bool):
        self.engine = engine
        self.is_sqlite = is_sqlite
        self._write_lock = asyncio.Lock() if is_sqlite else None

    @classmethod
    async def open(cls, url: str, *, sqlite_synchronous: str = "FULL") -> Store:
        parsed = make_url(url)
        # A URL without a driver gets the asyncio one (postgresql:// → asyncpg).
        parsed = parsed.set(drivername=_ASYNC_DRIVERS.get(parsed.drivername, parsed.drivername))
        is_sqlite = parsed.get_backend_name() == "sqlite"
        # What create_async_engine passes: pick the asyncio variant of the dialect.
        kwargs: dict[str, Any] = {"_is_async": True}
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
        engine = create_engine(parsed, **kwargs)
        if not engine.dialect.is_async:
            raise ValueError(
                f"database URL {parsed.render_as_string(hide_password=True)!r} names a "
                "driver without asyncio support; use sqlite+aiosqlite:// or "
                "postgresql+asyncpg://"
            )
        if is_sqlite:
            _install_sqlite_pragmas(engine, sqlite_synchronous)
        store = cls(engine, is_sqlite=is_sqlite)
        await store.migrate()
        return store

    async def migrate(self) -> None:
        async with self.write() as conn:
            await conn.run_sync(upgrade_to_head)

    @contextlib.asynccontextmanager
    async def _connect(self) -> AsyncIterator[AsyncConnection]:
        sync_connection: Connection = await greenlet_spawn(self.engine.connect)
        try:
            yield AsyncConnection(sync_connection)
        finally:
            await _run_to_completion(greenlet_spawn(sync_connection.close))

    @contextlib.asynccontextmanager
    async def _begin(self) -> AsyncIterator[AsyncConnection]:
        async with self._connect() as conn:
            transaction = await greenlet_spawn(conn.sync_connection.begin)
            try:
                yield conn
            except BaseException:
                # Closing the connection rolls back as well; this keeps the order plain.
                with contextlib.suppress(Exception):
                    await _run_to_completion(greenlet_spawn(transaction.rollback))
                raise
            await greenlet_spawn(transaction.commit)

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self._connect() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction, committed (durably) when the block exits without error."""
        if self._write_lock is None:
            async with self._begin() as conn:
                yield conn
            return
        async with self._write_lock, self._begin() as conn:
            yield conn

    async def close(self) -> None:
        await greenlet_spawn(self.engine.dispose)


def upsert_insert(conn: AsyncConnection, table: Table) -> Any:
    """``INSERT`` with ``on_conflict_do_update`` for the connection's dialect; each
    dialect's module is imported on first use, so a SQLite site never loads PostgreSQL's."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def _install_sqlite_pragmas(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()
