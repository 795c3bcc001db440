"""The store: migrations applied at open, WAL on SQLite, one writer at a time."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from sqlalchemy import text

from edgefed.store.engine import Store
from edgefed.store.migrate import head_revision
from edgefed.store.revocations import RevocationEvent, RevocationRepository


async def test_open_applies_migrations_and_wal(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'site.db'}")
    try:
        async with store.read() as conn:
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
            mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar()
        assert version == head_revision()
        assert mode == "wal"
    finally:
        await store.close()


async def test_head_marker_matches_migrations() -> None:
    marker = Path(__file__).parents[3] / "src/edgefed/store/migrations/HEAD"
    assert marker.read_text().strip() == head_revision()


async def test_concurrent_writes_do_not_collide(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'site.db'}")
    repo = RevocationRepository(store)
    try:
        await asyncio.gather(
            *(repo.add(RevocationEvent(issued_before=float(i), user_id=f"u{i}")) for i in range(50))
        )
        events = await repo.all_since(0.0)
        assert sorted(e.user_id or "" for e in events) == sorted(f"u{i}" for i in range(50))
    finally:
        await store.close()


async def test_reopen_keeps_committed_data(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'site.db'}"
    store = await Store.open(url)
    await RevocationRepository(store).add(RevocationEvent(issued_before=5.0, audit_id="a1"))
    await store.close()
    store = await Store.open(url)
    try:
        events = await RevocationRepository(store).all_since(0.0)
        assert [e.audit_id for e in events] == ["a1"]
    finally:
        await store.close()


async def test_reads_on_kept_connections_see_every_commit(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'site.db'}")
    repo = RevocationRepository(store)
    try:
        for i in range(3):  # the same kept connection reads after each commit
            assert len(await repo.all_since(0.0)) == i
            await repo.add(RevocationEvent(issued_before=float(i), user_id=f"u{i}"))
        # Read blocks open at once each have a connection; a commit made while they are
        # open is seen by the statements they run afterwards.
        gate = asyncio.Event()

        async def reader() -> int:
            async with store.read() as conn:
                await gate.wait()
                counted = (
                    await conn.execute(text("SELECT count(*) FROM revocation_events"))
                ).scalar()
                return int(counted or 0)

        readers = [asyncio.create_task(reader()) for _ in range(10)]
        await asyncio.sleep(0)
        await repo.add(RevocationEvent(issued_before=9.0, user_id="late"))
        gate.set()
        assert await asyncio.gather(*readers) == [4] * 10
    finally:
        await store.close()


async def test_a_read_block_never_commits_nor_keeps_a_lock(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'site.db'}")
    repo = RevocationRepository(store)
    try:
        async with store.read() as conn:  # a write by mistake, in a read block
            await conn.execute(
                text(
                    "INSERT INTO revocation_events (issued_before, floor, created_at) "
                    "VALUES (1.0, 1, 0)"
                )
            )
        async with asyncio.timeout(10):  # the writer is not locked out (busy_timeout: 30 s)
            await repo.add(RevocationEvent(issued_before=2.0, user_id="u"))
        assert [e.user_id for e in await repo.all_since(0.0)] == ["u"]
        try:
            async with store.read() as conn:
                await conn.execute(text("SELECT nonsense FROM nowhere"))
        except Exception as exc:
            assert "nowhere" in str(exc)
        assert len(await repo.all_since(0.0)) == 1  # reads go on after a failed one
    finally:
        await store.close()


async def test_memo_is_read_again_after_every_write(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'site.db'}")
    repo = RevocationRepository(store)
    loads: list[int] = []

    async def count() -> int:
        async with store.read() as conn:
            counted = (await conn.execute(text("SELECT count(*) FROM revocation_events"))).scalar()
        loads.append(int(counted or 0))
        return loads[-1]

    try:
        assert [await store.memo("n", count) for _ in range(3)] == [0, 0, 0]
        assert loads == [0]  # read once
        await repo.add(RevocationEvent(issued_before=1.0, user_id="u"))
        assert await store.memo("n", count) == 1
        with contextlib.suppress(RuntimeError):  # a write block that fails counts too
            async with store.write():
                raise RuntimeError("no")
        assert await store.memo("n", count) == 1
        assert loads == [0, 1, 1]

        # A load that a write's end overlapped is returned but not kept.
        release = asyncio.Event()

        async def slow() -> int:
            value = await count()
            await release.wait()
            return value

        pending = asyncio.create_task(store.memo("slow", slow))
        await asyncio.sleep(0)
        await repo.add(RevocationEvent(issued_before=2.0, user_id="v"))
        release.set()
        assert await pending == 1  # what it read before the write ended
        assert await store.memo("slow", count) == 2
    finally:
        await store.close()


async def test_an_in_memory_url_opens() -> None:
    store = await Store.open("sqlite://")  # no pool to size: each connection is its own
    await store.close()
