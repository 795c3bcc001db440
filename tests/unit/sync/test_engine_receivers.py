"""The sync engine as a source: a receiver's request waits for the operator unless it
was approved ahead or the ``sync_accept`` setting names it; accepting queues its first
full sync once; a pull or a blob is served only for what is marked for the asker;
marks in memory follow applied pushes; a revocation that fails does not fail a push."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sync_support import engine_of

from edgefed.core.errors import ValidationFailed
from edgefed.core.scope_resolve import StaticFleetView
from edgefed.store.image import ImageRepository
from edgefed.store.sync import Mark, Revocation
from edgefed.sync.state import SyncEngine
from edgefed.testkit.inprocess import InProcessSite


@pytest.fixture
async def source(berlin: Any) -> AsyncIterator[SyncEngine]:
    """Berlin's engine in a fleet with Denver and Lyon (its loops not started)."""
    site, repo = berlin
    fleet = StaticFleetView(sites=("Berlin", "Denver", "Lyon"))
    engine = SyncEngine(dataclasses.replace(engine_of(site).ctx, fleet=fleet), repo)
    try:
        yield engine
    finally:
        await engine.stop()


async def test_a_request_waits_for_the_operator_then_gets_a_full_sync(
    source: SyncEngine,
) -> None:
    engine = source
    await engine.mark(kind="flavor", key="*", to="Denver")
    assert await engine.request_receiver("Denver") == ("pending", 0)
    assert await engine.repo.list_receivers() == []

    state, queued = await engine.accept_receiver("Denver")
    assert state == "accepted"
    assert queued >= 3  # the three flavors, at least
    queued_keys = {r["key"] for r in await engine.repo.entries(target="Denver", kind="flavor")}
    assert {"f0", "f1", "f2"} <= queued_keys
    assert await engine.repo.list_receivers() == ["Denver"]
    assert "Denver" in engine.delivery.workers
    # Accepting again queues nothing more; asking again keeps it accepted.
    assert await engine.accept_receiver("Denver") == ("accepted", 0)
    assert (await engine.request_receiver("Denver"))[0] == "accepted"


async def test_a_receiver_approved_ahead_is_served_when_it_asks(source: SyncEngine) -> None:
    engine = source
    await engine.mark(kind="flavor", key="f1", to="Denver")
    assert await engine.accept_receiver("Denver") == ("approved", 0)
    state, queued = await engine.request_receiver("Denver")
    assert state == "accepted" and queued >= 1


async def test_removing_a_receiver_forgets_it_and_what_was_queued(source: SyncEngine) -> None:
    engine = source
    await engine.mark(kind="flavor", key="*", to="Denver")
    await engine.accept_receiver("Denver")
    await engine.request_receiver("Denver")
    assert await engine.remove_receiver("Denver")
    assert await engine.repo.entries(target="Denver") == []
    assert "Denver" not in engine.delivery.workers
    assert not await engine.remove_receiver("Denver")


async def test_the_accept_setting_names_sites_to_serve_at_once(
    site: InProcessSite,
) -> None:
    engine = engine_of(site)
    assert not engine.accepts_at_once("Berlin")
    ctx = dataclasses.replace(
        engine.ctx, settings=dataclasses.replace(engine.ctx.settings, sync_accept=("Berlin",))
    )
    configured = SyncEngine(ctx, engine.repo)
    assert configured.accepts_at_once("Berlin")
    assert not configured.accepts_at_once("Denver")


async def test_an_accept_setting_that_is_not_text_stops_the_start(site: InProcessSite) -> None:
    engine = engine_of(site)
    bad = dataclasses.replace(engine.ctx.settings, sync_accept=(5,))
    configured = SyncEngine(dataclasses.replace(engine.ctx, settings=bad), engine.repo)
    with pytest.raises(ValidationFailed) as refused:
        await configured.start()
    assert refused.value.field == "sync_accept"


async def test_a_pull_is_served_only_for_what_is_marked_for_the_asker(
    source: SyncEngine,
) -> None:
    engine = source
    await engine.mark(kind="flavor", key="f1", to="Denver")
    await engine.accept_receiver("Denver")
    await engine.request_receiver("Denver")
    assert await engine.pull_for("Denver", kind="flavor", key="f1") >= 1
    assert await engine.pull_for("Denver", kind="flavor", key="f2") == 0  # not marked
    assert await engine.pull_for("Lyon", kind="flavor", key="f1") == 0  # not for Lyon
    await engine.mark(kind="flavor", key="gone", to="Denver")
    assert await engine.pull_for("Denver", kind="flavor", key="gone") == 0  # no such row


async def test_a_blob_is_served_for_an_image_marked_for_the_asker(
    berlin: Any, source: SyncEngine
) -> None:
    site, _ = berlin
    engine = source
    images = ImageRepository(engine.ctx.store)
    data_dir = site.settings.data_dir
    marked = await images.create(owner=None, data=b"for denver", data_dir=data_dir)
    other = await images.create(owner=None, data=b"not for denver", data_dir=data_dir)
    await engine.mark(kind="image", key=marked.id, to="Denver")
    assert marked.blob_sha256 is not None and other.blob_sha256 is not None
    assert not await engine.serves_blob("Denver", marked.blob_sha256)  # not a receiver yet
    await engine.accept_receiver("Denver")
    await engine.request_receiver("Denver")
    assert await engine.serves_blob("Denver", marked.blob_sha256)
    assert not await engine.serves_blob("Denver", other.blob_sha256)
    assert not await engine.serves_blob("Lyon", marked.blob_sha256)


def applied(kind: str, key: str, op: str = "upsert", **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "key": key, "op": op, **extra}


async def test_marks_in_memory_follow_what_a_push_applied(site: InProcessSite) -> None:
    engine = engine_of(site)
    items = [
        applied("project", "p1", targets="Denver"),
        applied("project", "p2", targets="Lyon"),
        applied("project", "p3", targets=""),
    ]
    results = [{"status": "applied"}, {"status": "rejected"}, {"status": "applied"}]
    engine.note_applied(items, results, origin="Central")
    assert engine.marks[("project", "p1")] == [Mark("project", "p1", "Denver", "Central")]
    assert ("project", "p2") not in engine.marks  # refused: nothing changed
    assert ("project", "p3") not in engine.marks  # no pass-on targets
    assert engine.forwarded_targets("project", "p1") == "Denver"

    engine.note_applied([applied("project", "p1", op="delete")], [{"status": "applied"}],
                        origin="Central")  # fmt: skip
    assert ("project", "p1") not in engine.marks
    assert engine.forwarded_targets("project", "p1") is None


async def test_a_failed_revocation_does_not_fail_the_push(
    site: InProcessSite, caplog: pytest.LogCaptureFixture
) -> None:
    engine = engine_of(site)
    calls: list[tuple[str, str | None]] = []

    class Revoker:
        async def revoke_user(self, user_id: str, *, project_id: str | None = None) -> None:
            calls.append((user_id, project_id))
            if user_id == "broken":
                raise RuntimeError("revocation store unavailable")

    configured = SyncEngine(dataclasses.replace(engine.ctx, revoker=Revoker()), engine.repo)
    wanted = [Revocation("broken"), Revocation("u1", "p1"), Revocation("u1", "p1")]
    with caplog.at_level(logging.ERROR, logger="edgefed.sync.state"):
        await configured.revoke(wanted)
    assert calls == [("broken", None), ("u1", "p1")]  # each once, the failure skipped
    assert "revoking the tokens of user broken" in caplog.text
