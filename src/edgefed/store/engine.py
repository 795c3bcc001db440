"""The site's database: SQLite in WAL mode by default, PostgreSQL by URL, same code.

SQLite allows one writer at a time; instead of letting concurrent requests collide on
``database is locked``, every write transaction takes one asyncio lock (``Store.write``),
so writes queue in the process and reads never wait for them (WAL). With PostgreSQL
the lock is not taken and the server arbitrates.

A transaction committed by ``write()`` is on disk before the caller answers, so a 2xx
answer survives ``kill -9`` (and, with ``synchronous=FULL``, a power cut).

How statements run:

- **SQLite**: on the event loop, with the standard ``sqlite3`` driver. A statement on a
  local file in the page cache takes microseconds, less than the thread hops of an
  asyncio driver (aiosqlite: three per read; docs/bench.md); the one slow step of a write,
  the ``COMMIT`` that waits for ``fsync``, runs on the store's own commit thread while
  the loop serves other requests.
- **PostgreSQL**: SQLAlchemy's own asyncio mechanism (a sync ``Engine`` on asyncpg, each
  call run by ``greenlet_spawn``) without ``sqlalchemy.ext.asyncio``, which imports the
  ORM, the largest import a Core-only store would never use (docs/bench.md).

Neither path imports what the other needs (greenlet, asyncpg, the PostgreSQL dialect).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Table, create_engine, event
from sqlalchemy.engine import Connection, CursorResult, Engine, RootTransaction, make_url
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.base import Executable

from edgefed.store.migrate import upgrade_to_head

_T = TypeVar("_T")
_Rows = tuple[Any, ...]
# SQLite: open connections kept for reads between read blocks (one per read block that
# runs at the same time as others, up to this many), so that a read does not check a
# connection out of the pool and reset it on return, which cost more than most reads.
READERS_KEPT = 4
# Values ``Store.memo`` keeps at most (all of them are dropped when it is full).
MEMO_ENTRIES = 256
# URL scheme -> the driver the store runs it with. ``sqlite+aiosqlite`` was the default
# URL once; data directories and configurations that name it still open, on sqlite3.
_DRIVERS = {
    "sqlite": "sqlite+pysqlite",
    "sqlite+aiosqlite": "sqlite+pysqlite",
    "postgresql": "postgresql+asyncpg",
}


async def _inline(fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    return fn(*args, **kwargs)


async def _in_greenlet(fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    from sqlalchemy.util.concurrency import greenlet_spawn

    return await greenlet_spawn(fn, *args, **kwargs)


Runner = Callable[..., Awaitable[Any]]


class AsyncConnection:
    """The store's connection: ``execute`` and ``run_sync``, the same on both databases.

    Results are complete when ``execute`` returns (SQLite reads them on the loop; the
    asyncio drivers buffer them), so ``CursorResult`` methods (``first``, ``scalar``,
    ``mappings``, ``rowcount``, …) are plain calls afterwards.
    """

    __slots__ = ("_run", "sync_connection")

    def __init__(self, sync_connection: Connection, run: Runner):
        self.sync_connection = sync_connection
        self._run = run

    @property
    def dialect(self) -> Any:
        return self.sync_connection.dialect

    async def execute(self, statement: Executable, parameters: Any = None) -> CursorResult[*_Rows]:
        if self._run is _inline:
            return self.sync_connection.execute(statement, parameters)
        result: CursorResult[*_Rows] = await self._run(
            self.sync_connection.execute, statement, parameters, _require_await=True
        )
        soft_close = getattr(result.cursor, "_async_soft_close", None)
        if soft_close is not None:
            await soft_close()
        return result

    async def run_sync(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Run ``fn(sync_connection, *args, **kwargs)`` where it may use the sync API."""
        result: _T = await self._run(fn, self.sync_connection, *args, **kwargs)
        return result


async def _run_to_completion(step: Awaitable[_T]) -> _T:
    """Finish a step (a commit, closing a connection) even if the caller is cancelled
    meanwhile; the cancellation is re-raised once it is done, as SQLAlchemy's own context
    managers do, so a connection is never reused or handed back while still busy."""
    task = asyncio.ensure_future(step)
    cancelled: BaseException | None = None
    while not task.done():  # one more round per cancellation received, no more
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError as err:
            if task.done() and task.cancelled():
                raise
            cancelled = err
    result = task.result()
    if cancelled is not None:
        raise cancelled
    return result


class Store:
    def __init__(self, engine: Engine, *, is_sqlite: bool):
        self.engine = engine
        self.is_sqlite = is_sqlite
        self._write_lock = asyncio.Lock() if is_sqlite else None
        self._run: Runner = _inline if is_sqlite else _in_greenlet
        self._committer: ThreadPoolExecutor | None = None
        self._readers: list[Connection] = []
        # Write blocks ended so far: what ``memo`` keeps is valid while this is unchanged.
        self.generation = 0
        self._memo: dict[Hashable, tuple[int, Any]] = {}

    @classmethod
    async def open(cls, url: str, *, sqlite_synchronous: str = "FULL") -> Store:
        parsed = make_url(url)
        parsed = parsed.set(drivername=_DRIVERS.get(parsed.drivername, parsed.drivername))
        is_sqlite = parsed.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {}
        if is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            # Used by the loop and, for COMMIT, by the store's commit thread (never both
            # at once: the write lock and the awaited commit keep them apart).
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            kwargs["_is_async"] = True  # what create_async_engine passes
            kwargs["pool_size"] = 10
            kwargs["max_overflow"] = 10
            kwargs["pool_pre_ping"] = True
        if is_sqlite and (not parsed.database or parsed.database == ":memory:"):
            kwargs["poolclass"] = NullPool
        elif is_sqlite:
            # Kept readers stay checked out: room for them and for the writer.
            kwargs["pool_size"] = READERS_KEPT + 4
            kwargs["max_overflow"] = 32
        engine = create_engine(parsed, **kwargs)
        if not is_sqlite and not engine.dialect.is_async:
            raise ValueError(
                f"database URL {parsed.render_as_string(hide_password=True)!r} names a "
                "PostgreSQL driver without asyncio support; use postgresql+asyncpg://"
            )
        if is_sqlite:
            _install_sqlite_pragmas(engine, sqlite_synchronous)
        store = cls(engine, is_sqlite=is_sqlite)
        try:
            await store.migrate()
        except BaseException:
            await store.close()  # a refused database keeps no connection of ours
            raise
        return store

    async def migrate(self) -> None:
        async with self.write() as conn:
            await conn.run_sync(upgrade_to_head)

    @contextlib.asynccontextmanager
    async def _connect(self) -> AsyncIterator[AsyncConnection]:
        if self.is_sqlite:  # plain calls: nothing to await, nothing to interrupt
            sync_connection = self.engine.connect()
            try:
                yield AsyncConnection(sync_connection, _inline)
            finally:
                sync_connection.close()
            return
        sync_connection = await self._run(self.engine.connect)
        try:
            yield AsyncConnection(sync_connection, self._run)
        finally:
            await _run_to_completion(self._run(sync_connection.close))

    async def _commit(self, transaction: RootTransaction) -> None:
        if not self.is_sqlite:
            await self._run(transaction.commit)
            return
        if self._committer is None:
            self._committer = ThreadPoolExecutor(1, thread_name_prefix="edgefed-commit")
        loop = asyncio.get_running_loop()
        await _run_to_completion(loop.run_in_executor(self._committer, transaction.commit))

    @contextlib.asynccontextmanager
    async def _begin(self) -> AsyncIterator[AsyncConnection]:
        async with self._connect() as conn:
            transaction: RootTransaction = await self._run(conn.sync_connection.begin)
            try:
                yield conn
            except BaseException:
                # Closing the connection rolls back as well; this keeps the order plain.
                with contextlib.suppress(Exception):
                    await _run_to_completion(self._run(transaction.rollback))
                raise
            await self._commit(transaction)

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        if self.is_sqlite:
            async with self._sqlite_read() as conn:
                yield conn
            return
        async with self._connect() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def _sqlite_read(self) -> AsyncIterator[AsyncConnection]:
        """A read on a kept connection (see ``READERS_KEPT``).

        Each read block has a connection of its own while it runs, as before. With the
        standard driver a ``SELECT`` opens no transaction: each statement reads the
        latest commit. Ending the block rolls back, which is what the pool did on
        return; a block that fails leaves with its connection closed, not kept.
        """
        sync_connection = self._readers.pop() if self._readers else self.engine.connect()
        try:
            yield AsyncConnection(sync_connection, _inline)
        except BaseException:
            sync_connection.close()
            raise
        if len(self._readers) < READERS_KEPT and not sync_connection.invalidated:
            sync_connection.rollback()
            self._readers.append(sync_connection)
        else:
            sync_connection.close()

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction, committed (durably) when the block exits without error."""
        try:
            if self._write_lock is None:
                async with self._begin() as conn:
                    yield conn
                return
            async with self._write_lock, self._begin() as conn:
                yield conn
        finally:
            self.generation += 1  # after the commit (or the rollback): memos are stale

    async def memo(self, key: Hashable, load: Callable[[], Awaitable[_T]]) -> _T:
        """``load()``'s value, reused by later calls with ``key`` until a write block ends.

        For hot reads that return the same thing until the data changes (an image list
        asked for again and again). Every write of the site goes through ``write()``
        (the site's process owns its database), so a value read while no write ended
        is current. A value whose load overlapped the end of a write is not kept. The
        value is shared by every caller: it must not be changed (keep tuples, copy
        out).
        """
        generation = self.generation
        kept = self._memo.get(key)
        if kept is not None and kept[0] == generation:
            value: _T = kept[1]
            return value
        value = await load()
        if self.generation == generation:
            if len(self._memo) >= MEMO_ENTRIES:
                self._memo.clear()
            self._memo[key] = (generation, value)
        return value

    async def close(self) -> None:
        readers, self._readers = self._readers, []
        for reader in readers:
            reader.close()
        await self._run(self.engine.dispose)
        if self._committer is not None:
            self._committer.shutdown(wait=True)
            self._committer = None


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
