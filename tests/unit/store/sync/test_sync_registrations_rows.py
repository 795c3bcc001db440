"""Registrations, marks, and the rows a source reads to push: each repository alone."""

from __future__ import annotations

from sqlalchemy import insert, select

from edgefed.store.compute import FlavorRepository, QuotaRepository
from edgefed.store.engine import Store
from edgefed.store.identity import domains, projects
from edgefed.store.sync import (
    Mark,
    MarkRepository,
    OutboxEntry,
    Registrations,
    SyncOutbox,
    SyncReceiver,
    SyncRows,
    delivery_rank,
)


def queued(target: str, key: str) -> OutboxEntry:
    return OutboxEntry(target, "flavor", key, 1, "upsert", rank=delivery_rank("flavor", "upsert"))


async def test_removing_a_receiver_drops_only_its_registration_and_queue(store: Store) -> None:
    registrations, outbox = Registrations(store), SyncOutbox(store)
    for name in ("Denver", "Paris"):
        await registrations.request_receiver(name, now=1.0, accept=True)
    await outbox.enqueue([queued("Denver", "f1"), queued("Paris", "f1")], now=1.0, force=False)

    assert await registrations.remove_receiver("Denver")
    assert not await registrations.remove_receiver("Denver")  # gone already

    assert await registrations.list_receivers() == ["Paris"]
    assert [r["target"] for r in await outbox.entries()] == ["Paris"]


async def test_an_approval_ahead_is_kept_until_the_request_and_times_are_recorded(
    store: Store,
) -> None:
    registrations = Registrations(store)
    assert await registrations.accept_receiver("Lyon", now=10.0) == (None, "approved")
    assert await registrations.accept_receiver("Lyon", now=11.0) == ("approved", "approved")
    assert await registrations.list_receivers() == []  # approved is not served yet
    assert await registrations.request_receiver("Lyon", now=20.0, accept=False) == "accepted"
    (row,) = await registrations.registrations()
    assert (row["registered_at"], row["requested_at"], row["accepted_at"]) == (10.0, 20.0, 20.0)
    # Asking again changes nothing but the request time.
    assert await registrations.request_receiver("Lyon", now=30.0, accept=False) == "accepted"
    (row,) = await registrations.registrations()
    assert (row["state"], row["requested_at"], row["accepted_at"]) == ("accepted", 30.0, 20.0)


async def test_removing_a_source_releases_what_it_delivered(store: Store) -> None:
    registrations = Registrations(store)
    await registrations.add_source("Central", now=1.0)
    await registrations.add_source("Central", now=2.0)  # idempotent
    await registrations.add_source("Other", now=3.0)
    assert await registrations.list_sources() == ["Central", "Other"]
    async with store.write() as conn:
        await conn.execute(insert(domains).values(id="default", name="Default"))
    receiver = SyncReceiver(store, max_blob_bytes=0)
    row = {"id": "p1", "name": "ops", "domain_id": "default", "description": "",
           "enabled": True, "tags": [], "extra": {}}  # fmt: skip
    items = [{"kind": "project", "key": "p1", "version": 1, "op": "upsert", "row": row}]
    await receiver.apply_batch(source="Central", items=items, has_blob=lambda _s: True, now=5.0)
    other = [{**items[0], "key": "p2", "row": {**row, "id": "p2", "name": "web"}}]
    await receiver.apply_batch(source="Other", items=other, has_blob=lambda _s: True, now=5.0)

    assert await registrations.remove_source("Central")
    assert not await registrations.remove_source("Central")

    async with store.read() as conn:
        origins = dict((await conn.execute(select(projects.c.id, projects.c.origin))).all())
    assert origins == {"p1": None, "p2": "Other"}  # only Central's rows are released
    assert await registrations.list_sources() == ["Other"]


async def test_marks_are_set_replaced_listed_and_deleted(store: Store) -> None:
    marks = MarkRepository(store)
    await marks.put_mark(Mark("project", "*", "@region=eu", None), now=1.0)
    await marks.put_mark(Mark("flavor", "f1", "Paris", None), now=1.0)
    await marks.put_mark(Mark("flavor", "f1", "Paris,Lyon", "Central"), now=2.0)
    assert await marks.list_marks() == [
        Mark("flavor", "f1", "Paris,Lyon", "Central"),
        Mark("project", "*", "@region=eu", None),
    ]
    assert await marks.delete_mark("flavor", "f1")
    assert not await marks.delete_mark("flavor", "f1")
    assert [m.kind for m in await marks.list_marks()] == ["project"]


async def test_rows_are_read_as_they_travel_and_children_found_for_many_parents(
    store: Store,
) -> None:
    rows, flavors = SyncRows(store), FlavorRepository(store)
    for key in ("f1", "f2"):
        await flavors.create(
            values={"id": key, "name": key, "vcpus": 1, "ram": 64, "disk": 0, "is_public": False}
        )
    f1_record = await flavors.get("f1")
    assert f1_record is not None
    await flavors.add_access(f1_record, "p1")
    await QuotaRepository(store).set_limits(kind="project", owner="p1", limits={"cores": 2})

    encoded = await rows.encoded_rows([("flavor", "f1"), ("flavor", "gone")])
    assert encoded[("flavor", "gone")] is None
    f1 = encoded[("flavor", "f1")]
    assert f1 is not None and f1["id"] == "f1" and "origin" not in f1  # never travels
    assert isinstance(f1["created_at"], str)  # ISO 8601 on the wire
    assert sorted(await rows.keys_of("flavor")) == ["f1", "f2"]
    assert await rows.existing([("flavor", "f2"), ("flavor", "nope"), ("quota", "malformed")]) == [
        ("flavor", "f2")
    ]
    assert await rows.children({"flavor": ["f1", "f2"], "project": ["p1"]}) == [
        ("flavor_access", "f1|p1"),
        ("quota", "project|p1|cores"),
    ]
