"""Write blocks on both databases: a block that fails or is cancelled commits nothing
and leaves the store usable; on SQLite write blocks take turns in the process; what a
block committed is read by every later read; ``memo`` stays right past its bound."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from sqlalchemy import func, insert, select

from edgefed.store import engine as engine_module
from edgefed.store.engine import Store, upsert_insert
from edgefed.store.mappings import mapping_rules
from edgefed.store.revocations import revocation_events


def event(user: str) -> dict[str, object]:
    return {"user_id": user, "issued_before": 1.0, "floor": 1, "created_at": 0.0}


async def users(store: Store) -> list[str]:
    async with store.read() as conn:
        rows = await conn.execute(
            select(revocation_events.c.user_id).order_by(revocation_events.c.id)
        )
        return [str(r[0]) for r in rows]


async def test_a_block_that_fails_commits_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError, match="halfway"):
        async with store.write() as conn:
            await conn.execute(insert(revocation_events).values(**event("lost")))
            raise RuntimeError("halfway")
    assert await users(store) == []
    async with store.write() as conn:  # and the store goes on
        await conn.execute(insert(revocation_events).values(**event("kept")))
    assert await users(store) == ["kept"]


async def test_a_cancelled_block_commits_nothing_and_frees_the_writer(store: Store) -> None:
    inside = asyncio.Event()

    async def stuck() -> None:
        async with store.write() as conn:
            await conn.execute(insert(revocation_events).values(**event("cancelled")))
            inside.set()
            await asyncio.Event().wait()  # until cancelled

    task = asyncio.create_task(stuck())
    await inside.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    async with asyncio.timeout(10):  # the writer (lock or row locks) was released
        async with store.write() as conn:
            await conn.execute(insert(revocation_events).values(**event("after")))
    assert await users(store) == ["after"]


async def test_sqlite_write_blocks_take_turns(store: Store) -> None:
    if not store.is_sqlite:
        pytest.skip("PostgreSQL arbitrates concurrent transactions itself")
    trace: list[str] = []
    first_in = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with store.write() as conn:
            trace.append("first in")
            first_in.set()
            await release.wait()
            await conn.execute(insert(revocation_events).values(**event("first")))
            trace.append("first out")

    async def second() -> None:
        await first_in.wait()
        async with store.write() as conn:
            trace.append("second in")
            await conn.execute(insert(revocation_events).values(**event("second")))

    tasks = [asyncio.create_task(first()), asyncio.create_task(second())]
    await first_in.wait()
    for _ in range(5):  # the second block has had every chance to start
        await asyncio.sleep(0)
    assert trace == ["first in"]
    release.set()
    await asyncio.gather(*tasks)
    assert trace == ["first in", "first out", "second in"]
    assert await users(store) == ["first", "second"]


async def test_many_concurrent_blocks_all_commit(store: Store) -> None:
    async def one(n: int) -> None:
        async with store.write() as conn:
            await conn.execute(insert(revocation_events).values(**event(f"u{n:02}")))

    await asyncio.gather(*(one(n) for n in range(30)))
    assert sorted(await users(store)) == [f"u{n:02}" for n in range(30)]


async def test_reads_running_together_each_see_the_committed_rows(store: Store) -> None:
    async with store.write() as conn:
        await conn.execute(insert(revocation_events), [event(f"u{n}") for n in range(5)])

    async def count() -> int:
        async with store.read() as conn:
            found = await conn.execute(select(func.count()).select_from(revocation_events))
            return int(found.scalar_one())

    assert await asyncio.gather(*(count() for _ in range(12))) == [5] * 12


async def test_memo_stays_right_past_its_bound(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "MEMO_ENTRIES", 3)
    loads: list[int] = []

    def loader(n: int):  # type: ignore[no-untyped-def]
        async def load() -> int:
            loads.append(n)
            return n * n

        return load

    assert [await store.memo(("sq", n), loader(n)) for n in range(5)] == [0, 1, 4, 9, 16]
    assert await store.memo(("sq", 4), loader(4)) == 16  # kept since the last clear
    assert await store.memo(("sq", 0), loader(0)) == 0  # dropped by a clear: loaded again
    assert loads == [0, 1, 2, 3, 4, 0]


async def test_an_upsert_updates_the_row_it_conflicts_with(store: Store) -> None:
    rule: dict[str, object] = dict(
        id="r1", site="*", user_domain="*", user_name="*", target_type="system",
        target_id="all", source="api", created_at=0.0,
    )  # fmt: skip
    for role in ("reader", "member"):
        async with store.write() as conn:
            stmt = upsert_insert(conn, mapping_rules).values(**rule, role_id=role)
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[mapping_rules.c.id], set_={"role_id": stmt.excluded.role_id}
                )
            )
    async with store.read() as conn:
        rows = (await conn.execute(select(mapping_rules.c.id, mapping_rules.c.role_id))).all()
    assert [tuple(r) for r in rows] == [("r1", "member")]
