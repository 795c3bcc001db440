"""The source's router over the site's real change log: a page of changes becomes
outbox rows for the receivers their marks target, with the cursor moved in the same
transaction; a page for nobody moves it in memory until it is worth a write; a first
sync queues everything marked, children included (fake clock, a two-site fleet view)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from sync_support import FakeClock

from edgefed.core.scope_resolve import StaticFleetView
from edgefed.store.compute import FlavorRepository
from edgefed.store.sync import Mark, OutboxEntry, SyncRepository
from edgefed.sync.engine import CURSOR_SAVE_SECONDS, ChangeRouter
from edgefed.sync.state import SyncEngine
from edgefed.testkit.inprocess import InProcessSite


@pytest.fixture
async def routed(
    site: InProcessSite,
) -> tuple[ChangeRouter, SyncRepository, list[OutboxEntry], FakeClock, Any]:
    """A router of Berlin's changes towards Denver (an accepted receiver), driven by hand."""
    await site.app.state.ctx.slots.require(SyncEngine).router.stop()  # this test routes
    clock, queued = FakeClock(1000.0), []
    ctx = dataclasses.replace(
        site.app.state.ctx, clock=clock, fleet=StaticFleetView(sites=("Berlin", "Denver"))
    )
    repo = SyncRepository(ctx.store)
    await repo.request_receiver("Denver", now=clock(), accept=True)
    router = ChangeRouter(ctx, repo, on_queued=queued.extend)
    while await router.route_once():  # the site's own seeding: routed to nobody
        pass
    await router.maybe_prune(force=True)  # and saved
    return router, repo, queued, clock, FlavorRepository(ctx.store)


def flavor(flavor_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": flavor_id, "name": flavor_id, "vcpus": 1, "ram": 64, "disk": 0, **extra}


async def test_a_page_is_queued_for_its_targets_with_the_cursor_in_one_write(
    routed: Any,
) -> None:
    router, repo, queued, clock, flavors = routed
    await repo.put_mark(Mark("flavor", "*", "Denver", None), now=clock())
    big = await flavors.create(values=flavor("big"))
    await flavors.update(big, description="twice")
    await flavors.create(values=flavor("other"))
    latest = await repo.versions_of([("flavor", "big"), ("flavor", "other")])

    assert await router.route_once() == 3  # three changes consumed...

    assert [(e.target, e.key, e.version) for e in queued] == [
        ("Denver", "big", latest[("flavor", "big")][0]),  # ...two resources, latest versions
        ("Denver", "other", latest[("flavor", "other")][0]),
    ]
    assert await repo.cursor() == latest[("flavor", "other")][0]  # saved with the rows
    assert [r["key"] for r in await repo.entries(target="Denver")] == ["big", "other"]
    assert await router.route_once() == 0


async def test_a_page_for_nobody_moves_the_cursor_in_memory_until_it_is_worth_a_write(
    routed: Any,
) -> None:
    router, repo, queued, clock, flavors = routed
    stored = await repo.cursor()
    await flavors.create(values=flavor("unmarked"))

    assert await router.route_once() == 1
    assert queued == [] and await repo.cursor() == stored  # nothing queued, nothing written
    assert await router.route_once() == 0
    assert await repo.cursor() == stored
    clock.now += CURSOR_SAVE_SECONDS
    assert await router.route_once() == 0
    assert await repo.cursor() > stored  # written once it was worth it


async def test_a_first_sync_queues_everything_marked_with_its_children(routed: Any) -> None:
    router, repo, queued, clock, flavors = routed
    private = await flavors.create(values=flavor("private", is_public=False))
    await flavors.add_access(private, "p1")
    await flavors.create(values=flavor("public"))
    await repo.put_mark(Mark("flavor", "private", "Denver", None), now=clock())
    await repo.put_mark(Mark("flavor", "gone", "Denver", None), now=clock())  # deleted since

    count = await router.full_sync("Denver")

    assert count == 2
    assert sorted((e.kind, e.key) for e in queued) == [
        ("flavor", "private"),
        ("flavor_access", "private|p1"),  # goes where its flavor goes
    ]
    # Only to accepted receivers it targets: Lyon is neither.
    assert await router.enqueue_resources([("flavor", "private")], only={"Lyon"}) == 0
