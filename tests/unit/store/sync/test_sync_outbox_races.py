"""The outbox under concurrent writers (PostgreSQL does not serialise them): versions
queued at once leave the newest, settles racing a newer version never mark it done,
and every target's row is its own."""

from __future__ import annotations

import asyncio
import random

from edgefed.store.engine import Store
from edgefed.store.sync import DONE, PENDING, OutboxEntry, Outcome, SyncOutbox, delivery_rank


def entry(key: str, version: int, *, target: str = "Denver") -> OutboxEntry:
    return OutboxEntry(
        target, "project", key, version, "upsert", rank=delivery_rank("project", "upsert")
    )


async def only_row(outbox: SyncOutbox, key: str, target: str = "Denver") -> dict[str, object]:
    (row,) = await outbox.entries(target=target, key=key)
    return row


async def test_versions_queued_at_once_leave_the_newest(store: Store) -> None:
    outbox = SyncOutbox(store)
    versions = list(range(1, 11))
    random.Random(3).shuffle(versions)
    await asyncio.gather(
        *(outbox.enqueue([entry("p1", v)], now=float(v), force=False) for v in versions)
    )
    row = await only_row(outbox, "p1")
    assert (row["version"], row["state"]) == (10, PENDING)


async def test_a_settle_racing_a_newer_version_never_marks_it_done(store: Store) -> None:
    outbox = SyncOutbox(store)
    await outbox.enqueue([entry("p1", 1)], now=1.0, force=False)
    await asyncio.gather(
        outbox.settle_many([Outcome("Denver", done=[entry("p1", 1)], failed=[], now=2.0)]),
        outbox.enqueue([entry("p1", 2)], now=2.0, force=False),
    )
    row = await only_row(outbox, "p1")
    # Whichever came first, version 2 is what is left, and it is still to deliver.
    assert (row["version"], row["state"]) == (2, PENDING)
    await outbox.settle_many([Outcome("Denver", done=[entry("p1", 2)], failed=[], now=3.0)])
    assert (await only_row(outbox, "p1"))["state"] == DONE


async def test_many_targets_queued_at_once_each_get_their_row(store: Store) -> None:
    outbox = SyncOutbox(store)
    targets = [f"Site{n}" for n in range(8)]
    await asyncio.gather(
        *(
            outbox.enqueue([entry(f"p{k}", 1, target=t) for k in range(5)], now=1.0, force=False)
            for t in targets
        )
    )
    for target in targets:
        keys = sorted(str(r["key"]) for r in await outbox.entries(target=target))
        assert keys == [f"p{k}" for k in range(5)]
    assert set(await outbox.targets_with_work()) == set(targets)
