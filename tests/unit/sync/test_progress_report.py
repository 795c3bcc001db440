"""The progress report: counts per target with rows in flight shown as such, and the
report a receiver gives one of its sources, which holds only what that source
delivered (a bare store: the report is a function of the sync tables)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from edgefed.store.sync import (
    OutboxEntry,
    Outcome,
    Registrations,
    SyncReceiver,
    SyncRepository,
    delivery_rank,
)
from edgefed.sync.progress import local_report

BERLIN = SimpleNamespace(name="Berlin")


def project(pid: str, version: int, name: str | None = None) -> dict[str, Any]:
    row = {"id": pid, "name": name or pid, "domain_id": "default", "description": "",
           "enabled": True, "tags": [], "extra": {}}  # fmt: skip
    return {"kind": "project", "key": pid, "version": version, "op": "upsert", "row": row}


def image(iid: str) -> dict[str, Any]:
    when = "2026-01-01T00:00:00+00:00"
    row = {"id": iid, "name": iid, "status": "active", "size": 1, "virtual_size": None,
           "disk_format": "raw", "container_format": "bare", "owner": None,
           "visibility": "public", "protected": False, "os_hidden": False, "min_disk": 0,
           "min_ram": 0, "checksum": None, "os_hash_algo": None, "os_hash_value": None,
           "blob_sha256": "ab" * 32, "properties": {}, "tags": [], "created_at": when,
           "updated_at": when}  # fmt: skip
    return {"kind": "image", "key": iid, "version": 1, "op": "upsert", "row": row}


def onwards(key: str, target: str = "Denver") -> OutboxEntry:
    return OutboxEntry(target, "project", key, 5, "upsert", rank=delivery_rank("project", "upsert"))


async def received(repo: SyncRepository) -> None:
    """Berlin receives from Central and Other, passes both on to Denver, and holds a
    project of its own that clashes with each source once."""
    receiver = SyncReceiver(repo.store, max_blob_bytes=1 << 20)
    for source, mine in (("Central", "c"), ("Other", "o")):
        await Registrations(repo.store).add_source(source, now=1.0)
        items = [project(f"{mine}1", 1), project(f"{mine}2", 2), image(f"{mine}-img")]
        await receiver.apply_batch(source=source, items=items, has_blob=lambda _s: False, now=2.0)
    await receiver.apply_batch(source="Gone", items=[project("local", 1)],
                               has_blob=lambda _s: True, now=2.0)  # fmt: skip
    await Registrations(repo.store).remove_source("Gone")  # "local" is Berlin's own now
    for source in ("Central", "Other"):
        clash = project("x", 3, name="local")  # a name Berlin's own project has
        await receiver.apply_batch(source=source, items=[clash], has_blob=lambda _s: True, now=3.0)
    queued = [onwards(k) for k in ("c1", "c2", "o1", "o2")]
    await repo.enqueue(queued, now=4.0, force=False)
    failed = [(e, "refused", 99.0) for e in queued if e.key in ("c1", "o1")]
    await repo.settle_many([Outcome("Denver", done=[], failed=failed, now=5.0)])


async def test_a_source_sees_only_what_it_delivered(repo: SyncRepository) -> None:
    await received(repo)

    report = await local_report(BERLIN, repo, for_source="Central", kind="project")  # type: ignore[arg-type]

    assert report["sources"] == ["Central"]
    assert [e["id"] for e in report["failing"]] == ["c1"]
    assert sorted(e["id"] for e in report["resources"]) == ["c1", "c2"]
    assert [i["image_id"] for i in report["images"]] == ["c-img"]
    assert [(c["source"], c["held"]["id"]) for c in report["conflicts"]] == [("Central", "local")]
    assert "registrations" not in report  # the operator's business, not a source's
    # Counts are numbers per target, the same for everyone.
    assert report["targets"]["Denver"]["failing"] == 2


async def test_this_sites_operator_sees_everything_and_rows_in_flight(
    repo: SyncRepository,
) -> None:
    await received(repo)
    await repo.request_receiver("Lyon", now=6.0, accept=False)  # waits for the operator

    report = await local_report(BERLIN, repo, breakers={"Denver": "open"}, inflight={"Denver": 3})  # type: ignore[arg-type]

    assert report["sources"] == ["Central", "Other"]
    assert sorted(e["id"] for e in report["failing"]) == ["c1", "o1"]
    assert {c["source"] for c in report["conflicts"]} == {"Central", "Other"}
    assert report["registrations"] == [{"receiver": "Lyon", "state": "pending"}]
    denver = report["targets"]["Denver"]
    # 2 pending and 2 failing in the outbox; 3 are being pushed: pending ones first.
    assert (denver["pending"], denver["failing"], denver["inflight"]) == (0, 1, 3)
    assert (denver["total"], denver["breaker"]) == (4, "open")
