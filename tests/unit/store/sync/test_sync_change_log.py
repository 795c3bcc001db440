"""The change log: every write of a synchronisable table is captured in its own
transaction, read in order, versioned, and pruned to what someone still needs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import insert

from edgefed.store.compute import FlavorRepository, QuotaRepository
from edgefed.store.compute.tables import flavors
from edgefed.store.engine import Store
from edgefed.store.schema import utcnow
from edgefed.store.sync import DONE, ChangeLog, OutboxEntry, Outcome, SyncOutbox, delivery_rank


def flavor(flavor_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": flavor_id, "name": f"f-{flavor_id}", "vcpus": 1, "ram": 64, "disk": 0, **extra}


async def changes(log: ChangeLog, after: int = 0) -> list[tuple[str, str, str]]:
    return [(c.kind, c.key, c.op) for c in await log.changes_after(after, limit=1000)]


async def test_every_write_of_an_owner_is_captured_in_order(store: Store) -> None:
    log, repo = ChangeLog(store), FlavorRepository(store)
    created = await repo.create(values=flavor("f1", is_public=False))
    await repo.add_access(created, "p1")
    await repo.update(created, description="bigger")
    await repo.delete(created)  # takes its access list with it
    await QuotaRepository(store).set_limits(kind="project", owner="p1", limits={"cores": 8})

    assert await changes(log) == [
        ("flavor", "f1", "upsert"),
        ("flavor_access", "f1|p1", "upsert"),
        ("flavor", "f1", "upsert"),
        ("flavor", "f1", "delete"),
        ("flavor_access", "f1|p1", "delete"),
        ("quota", "project|p1|cores", "upsert"),  # a composite key, '|'-joined
    ]
    seqs = [c.seq for c in await log.changes_after(0, limit=1000)]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert [c.key for c in await log.changes_after(seqs[2], limit=2)] == ["f1", "f1|p1"]


async def test_a_write_that_rolls_back_leaves_no_change(store: Store) -> None:
    log = ChangeLog(store)
    with pytest.raises(RuntimeError):
        async with store.write() as conn:
            await conn.execute(insert(flavors).values(**flavor("gone"), created_at=utcnow()))
            raise RuntimeError("the request failed after the insert")
    assert await changes(log) == []
    assert await FlavorRepository(store).get("gone") is None


async def test_versions_are_the_latest_change_of_each_resource(store: Store) -> None:
    log, repo = ChangeLog(store), FlavorRepository(store)
    kept = await repo.create(values=flavor("kept"))
    await repo.update(kept, description="v2")
    gone = await repo.create(values=flavor("gone"))
    await repo.delete(gone)
    latest = {(c.kind, c.key): c.seq for c in await log.changes_after(0, limit=1000)}

    versions = await log.versions_of([("flavor", "kept"), ("flavor", "gone"), ("flavor", "never")])

    assert versions == {
        ("flavor", "kept"): (latest[("flavor", "kept")], "upsert"),
        ("flavor", "gone"): (latest[("flavor", "gone")], "delete"),
        ("flavor", "never"): (0, "upsert"),
    }


async def test_pruning_keeps_versions_and_what_a_target_still_waits_for(store: Store) -> None:
    log, outbox, repo = ChangeLog(store), SyncOutbox(store), FlavorRepository(store)
    edited = await repo.create(values=flavor("edited"))
    for n in range(3):
        await repo.update(edited, description=f"v{n}")
    waited = await repo.create(values=flavor("waited"))
    await repo.delete(waited)
    delivered = await repo.create(values=flavor("delivered"))
    await repo.delete(delivered)
    tail = await repo.create(values=flavor("tail"))  # the newest row of the log
    everything = await log.changes_after(0, limit=1000)
    version = {(c.kind, c.key): c.seq for c in everything}
    tombstones = [
        OutboxEntry("Denver", "flavor", key, version[("flavor", key)], "delete",
                    rank=delivery_rank("flavor", "delete"))
        for key in ("waited", "delivered")
    ]  # fmt: skip
    await outbox.enqueue(tombstones, now=1.0, force=False)
    await outbox.settle_many([Outcome("Denver", done=[tombstones[1]], failed=[], now=2.0)])
    await repo.update(tail, description="after the cursor")

    dropped = await log.prune_changes(cursor=version[("flavor", "tail")])

    left = [(c.key, c.op) for c in await log.changes_after(0, limit=1000)]
    assert left == [
        ("edited", "upsert"),  # the resource's version: the newest of its changes
        ("waited", "delete"),  # Denver still waits for this delete
        ("tail", "upsert"),  # past the cursor (and superseding the one at it)
    ]
    assert dropped == len(everything) + 1 - len(left)
    assert await log.versions_of([("flavor", "edited")]) == {
        ("flavor", "edited"): (version[("flavor", "edited")], "upsert")
    }
    delivered_rows = await outbox.entries(key="delivered", states=[DONE])
    assert delivered_rows == []  # its done row went with its last change
    assert [r["key"] for r in await outbox.entries()] == ["waited"]


async def test_the_newest_change_survives_pruning_so_no_sequence_is_reused(
    store: Store,
) -> None:
    log, repo = ChangeLog(store), FlavorRepository(store)
    only = await repo.create(values=flavor("only"))
    await repo.delete(only)
    (last,) = [c.seq for c in await log.changes_after(0, limit=1000)][-1:]
    await log.prune_changes(cursor=last)
    assert [(c.seq, c.op) for c in await log.changes_after(0, limit=1000)] == [(last, "delete")]
    await repo.create(values=flavor("next"))
    assert (await log.changes_after(last, limit=1))[0].seq > last


async def test_on_commit_calls_back_after_the_data_is_committed(store: Store) -> None:
    log, repo = ChangeLog(store), FlavorRepository(store)
    seen: list[list[tuple[str, str, str]]] = []
    looked = asyncio.Event()
    lookups: list[asyncio.Task[None]] = []

    def committed() -> None:
        async def look() -> None:  # a reader woken now must find the change
            seen.append(await changes(log))
            looked.set()

        lookups.append(asyncio.get_running_loop().create_task(look()))

    undo = log.on_commit(committed)
    try:
        await repo.create(values=flavor("f1"))
        await asyncio.wait_for(looked.wait(), 5)
    finally:
        undo()
    assert seen[0] == [("flavor", "f1", "upsert")]
    calls = len(seen)
    await repo.create(values=flavor("f2"))
    await asyncio.gather(*lookups)
    assert len(seen) == calls  # undone: no more callbacks


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_the_downgrade_drops_every_trigger_the_upgrade_creates(dialect: str) -> None:
    import re

    from edgefed.store.sync import KINDS, capture_ddl, drop_capture_ddl

    created = {m for s in capture_ddl(dialect) for m in re.findall(r"TRIGGER (\w+)", s)}
    dropped = {m for s in drop_capture_ddl(dialect) for m in re.findall(r"EXISTS (\w+)", s)}
    assert created and created <= dropped
    tables = {k.table.name for k in KINDS.values()}
    assert {t for t in tables if any(t in name for name in created)} == tables  # every kind
