"""A receiver applies a source's rows with their versions and marks, answers each item,
asks for missing blobs, and forgets a clash once the source's row goes in (a bare store:
the receiver at its own level; test_receiver_ownership.py has the hostile cases)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import insert, select

from edgefed.store.engine import Store
from edgefed.store.identity import domains
from edgefed.store.image import images
from edgefed.store.sync import (
    BlobFetches,
    ConflictRepository,
    MarkRepository,
    PushOutcome,
    Registrations,
    SyncReceiver,
)
from edgefed.store.sync import conflicts as conflicts_module
from edgefed.store.sync.tables import applied

SHA = "ab" * 32
NOW = "2026-01-01T00:00:00+00:00"


@pytest.fixture
async def receiver(store: Store) -> SyncReceiver:
    async with store.write() as conn:
        await conn.execute(insert(domains).values(id="default", name="Default"))
    return SyncReceiver(store, max_blob_bytes=1 << 20, normalise_targets=_normalise)


def _normalise(text: str) -> str:
    if text.startswith("!"):
        raise ValueError(f"{text!r} is not a target set")
    return ",".join(sorted(text.split(",")))


async def push(
    receiver: SyncReceiver, items: list[dict[str, Any]], *, source: str = "Central",
    has_blob: Callable[[str], bool] = lambda _sha: False,
) -> PushOutcome:  # fmt: skip
    return await receiver.apply_batch(source=source, items=items, has_blob=has_blob, now=50.0)


def statuses(outcome: PushOutcome) -> list[str]:
    return [f"{r['status']} {r['code']}" if "code" in r else r["status"] for r in outcome.results]


def project(pid: str, version: int, *, name: str | None = None, **extra: Any) -> dict[str, Any]:
    row = {"id": pid, "name": name or f"n-{pid}", "domain_id": "default", "parent_id": "default",
           "description": "", "enabled": True, "tags": [], "extra": {}}  # fmt: skip
    return {"kind": "project", "key": pid, "version": version, "op": "upsert", "row": row, **extra}


def deleted(kind: str, key: str, version: int) -> dict[str, Any]:
    return {"kind": kind, "key": key, "version": version, "op": "delete"}


def image(iid: str, version: int, *, sha: str | None = SHA) -> dict[str, Any]:
    row = {"id": iid, "name": "img", "status": "active", "size": 10, "virtual_size": None,
           "disk_format": "raw", "container_format": "bare", "owner": None,
           "visibility": "public", "protected": False, "os_hidden": False, "min_disk": 0,
           "min_ram": 0, "checksum": None, "os_hash_algo": None, "os_hash_value": None,
           "blob_sha256": sha, "properties": {}, "tags": [], "created_at": NOW,
           "updated_at": NOW}  # fmt: skip
    return {"kind": "image", "key": iid, "version": version, "op": "upsert", "row": row}


async def applied_versions(store: Store) -> dict[str, tuple[str, int]]:
    async with store.read() as conn:
        rows = await conn.execute(select(applied.c.key, applied.c.source, applied.c.version))
        return {str(k): (str(s), int(v)) for k, s, v in rows}


async def test_versions_decide_applied_duplicate_and_stale(
    receiver: SyncReceiver, store: Store
) -> None:
    assert statuses(await push(receiver, [project("p1", 5)])) == ["applied"]
    again = await push(receiver, [project("p1", 5), project("p1", 4), project("p1", 6)])
    assert statuses(again) == ["duplicate", "stale", "applied"]
    assert statuses(await push(receiver, [deleted("project", "p1", 3)])) == ["stale"]
    assert await applied_versions(store) == {"p1": ("Central", 6)}
    assert statuses(await push(receiver, [deleted("project", "p1", 7)])) == ["applied"]
    assert statuses(await push(receiver, [project("p1", 7)])) == ["duplicate"]


async def test_a_delete_of_a_row_never_held_is_applied_and_writes_nothing(
    receiver: SyncReceiver, store: Store
) -> None:
    outcome = await push(receiver, [deleted("project", "never-here", 9)])
    assert statuses(outcome) == ["applied"]
    assert await applied_versions(store) == {}


async def test_pass_on_targets_become_marks_of_the_source_and_go_with_a_delete(
    receiver: SyncReceiver, store: Store
) -> None:
    marks = MarkRepository(store)
    outcome = await push(
        receiver,
        [project("p1", 1, targets="Paris,Lyon"), project("p2", 2, targets="!bad"),
         project("p3", 3, targets="x" * 2000)],
    )  # fmt: skip
    assert statuses(outcome) == ["applied", "rejected 400", "rejected 400"]
    assert "not a target set" in outcome.results[1]["error"]
    assert [(m.key, m.targets, m.origin) for m in await marks.list_marks()] == [
        ("p1", "Lyon,Paris", "Central")
    ]
    assert statuses(await push(receiver, [deleted("project", "p1", 4)])) == ["applied"]
    assert await marks.list_marks() == []


async def test_a_row_whose_parent_is_unknown_waits_for_it(receiver: SyncReceiver) -> None:
    row = {"kind": "project", "owner": "p1", "resource": "cores", "hard_limit": 4}
    quota = {"kind": "quota", "key": "project|p1|cores", "version": 2, "op": "upsert", "row": row}
    early = await push(receiver, [quota])
    assert statuses(early) == ["rejected 422"]
    assert "refers to project p1, unknown here" in early.results[0]["error"]
    assert statuses(await push(receiver, [project("p1", 1), quota])) == ["applied", "applied"]


async def test_two_rows_of_the_source_with_one_name_are_retried_not_a_conflict(
    receiver: SyncReceiver, store: Store
) -> None:
    assert statuses(await push(receiver, [project("old", 1, name="web")])) == ["applied"]
    # "web" moved from one project to another at the source: the new row comes first.
    outcome = await push(receiver, [project("new", 2, name="web")])
    assert statuses(outcome) == ["rejected 409"]
    assert outcome.results[0]["error"].endswith("retried")
    assert await ConflictRepository(store).list() == []
    renamed = await push(
        receiver, [project("old", 3, name="web-old"), project("new", 2, name="web")]
    )
    assert statuses(renamed) == ["applied", "applied"]


async def test_a_clash_is_forgotten_once_the_sources_row_goes_in(
    receiver: SyncReceiver, store: Store
) -> None:
    registrations, conflicts = Registrations(store), ConflictRepository(store)
    assert statuses(await push(receiver, [project("p1", 1)], source="Old")) == ["applied"]
    await registrations.remove_source("Old")  # released: p1 is this site's own now
    clash = await push(receiver, [project("p1", 2)])
    assert statuses(clash) == ["conflict 409"]
    (recorded,) = await conflicts.list()
    assert (recorded["clash"], recorded["held_origin"], recorded["count"]) == ("id", None, 1)
    assert await conflicts.counts() == {"Central": 1}

    assert await conflicts.adopt(recorded)  # the operator hands the row to Central
    assert statuses(await push(receiver, [project("p1", 2)])) == ["applied"]
    assert await conflicts.list() == []


async def test_a_source_records_a_bounded_number_of_clashes(
    receiver: SyncReceiver, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(conflicts_module, "MAX_CONFLICTS_PER_SOURCE", 2)
    keys = [f"p{n}" for n in range(4)]
    assert (
        statuses(await push(receiver, [project(k, 1) for k in keys], source="Old"))
        == ["applied"] * 4
    )
    await Registrations(store).remove_source("Old")
    outcome = await push(receiver, [project(k, 2) for k in keys], source="Hostile")
    assert statuses(outcome) == ["conflict 409"] * 4  # still refused, every one
    assert await ConflictRepository(store).counts() == {"Hostile": 2}


async def test_an_image_without_its_blob_waits_for_a_fetch(
    receiver: SyncReceiver, store: Store
) -> None:
    fetches = BlobFetches(store)
    assert statuses(await push(receiver, [image("i1", 1)])) == ["applied"]
    (fetch,) = await fetches.pending_fetches()
    assert (fetch.image_id, fetch.sha256, fetch.source, fetch.size) == ("i1", SHA, "Central", 10)
    assert await status_of(store, "i1") == "queued"  # not active before its data is here

    await fetches.fetch_failed("i1", "cut " * 200)
    (failing,) = await fetches.pending_fetches()
    assert (failing.state, failing.attempts) == ("failing", 1)
    await fetches.fetch_done("i1", sha256="cd" * 32)  # another blob: the image changed since
    assert await status_of(store, "i1") == "queued"
    await fetches.fetch_done("i1", sha256=SHA)
    assert await status_of(store, "i1") == "active"
    assert await fetches.pending_fetches() == []
    assert await fetches.images_with_blob(SHA) == ["i1"]


async def test_an_image_whose_blob_is_held_is_active_at_once(
    receiver: SyncReceiver, store: Store
) -> None:
    held = await push(receiver, [image("i2", 1)], has_blob=lambda sha: sha == SHA)
    assert statuses(held) == ["applied"]
    assert await status_of(store, "i2") == "active"
    assert await BlobFetches(store).pending_fetches() == []


async def status_of(store: Store, image_id: str) -> str:
    async with store.read() as conn:
        return str(
            (await conn.execute(select(images.c.status).where(images.c.id == image_id))).scalar()
        )
