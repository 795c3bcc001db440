"""A push worker's edges: answers it cannot read, items the receiver left out, a batch
it could not build, hand-overs past its batch, and the loops and per-peer table
(``Delivery``) that run it. Peers are httpx ``MockTransport`` handlers."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import Any

import httpx
import pytest
from sync_support import Denver, FakeClock, each, queue, states, worker_for

from edgefed.store.sync import OutboxEntry, SyncRepository
from edgefed.sync import delivery as delivery_module
from edgefed.sync.delivery import Delivery
from edgefed.testkit.inprocess import InProcessSite
from edgefed.testkit.wait import eventually

UNREADABLE = [
    httpx.Response(200, text="not json"),
    httpx.Response(200, json={"ok": True}),  # no results
    httpx.Response(200, json={"results": 5}),
    httpx.Response(400, json={"error": {"message": "bad push"}}),  # the whole push refused
]


async def test_an_answer_without_item_results_fails_the_batch(berlin: Any) -> None:
    site, repo = berlin
    answers = iter(UNREADABLE)
    denver, clock = Denver(lambda _items: next(answers)), FakeClock()
    await queue(repo, ("flavor", "f0"), ("flavor", "f1"))
    worker = worker_for(site, repo, denver, clock, threshold=100)
    for attempt, answer in enumerate(UNREADABLE, start=1):
        await worker.step()
        delay = 10.0 if attempt == 1 else 20.0
        assert await states(repo) == {
            "f0": ("failing", attempt, clock.now + delay),
            "f1": ("failing", attempt, clock.now + delay),
        }
        assert worker.breaker.failures == attempt
        assert worker.last_error is not None
        assert f"answered {answer.status_code}" in worker.last_error
        clock.now += delay
    assert len(denver.pushes) == len(UNREADABLE)


async def test_an_item_the_receiver_did_not_answer_is_retried(berlin: Any) -> None:
    site, repo = berlin

    def only_f0(items: list[dict[str, Any]]) -> httpx.Response:
        results = [{"kind": i["kind"], "key": i["key"], "status": "applied"} for i in items]
        return httpx.Response(200, json={"results": [r for r in results if r["key"] == "f0"]})

    denver, clock = Denver(only_f0), FakeClock()
    await queue(repo, ("flavor", "f0"), ("flavor", "f1"))
    worker = worker_for(site, repo, denver, clock)
    await worker.step()
    assert {k: s[:2] for k, s in (await states(repo)).items()} == {
        "f0": ("done", 1),
        "f1": ("failing", 1),
    }
    (failing,) = await repo.entries(target="Denver", states=["failing"])
    assert failing["last_error"] == "no answer for this item"
    # Answered per item: the peer is up, so its breaker does not count this.
    assert worker.breaker.failures == 0 and worker.last_error is None


async def test_backoff_grows_with_each_failed_attempt(berlin: Any) -> None:
    site, repo = berlin
    denver, clock = Denver(each("rejected")), FakeClock()
    await queue(repo, ("flavor", "f0"))
    worker = worker_for(site, repo, denver, clock, threshold=100)
    waits = []
    for _ in range(4):
        await worker.step()
        state, attempts, next_at = (await states(repo))["f0"]
        waits.append((attempts, next_at - clock.now))
        clock.now = next_at
    # (10, 20) without jitter: the last delay repeats.
    assert waits == [(1, 10.0), (2, 20.0), (3, 20.0), (4, 20.0)]


async def test_a_batch_that_cannot_be_built_fails_without_staying_in_flight(
    berlin: Any,
) -> None:
    site, repo = berlin
    denver, clock = Denver(each("applied")), FakeClock()
    await queue(repo, ("flavor", "f0"))
    worker = worker_for(site, repo, denver, clock)

    def broken(kind: str, key: str) -> Any:
        raise RuntimeError("targets unreadable")

    worker.forwarded_targets = broken
    assert await worker.step() == 0.0
    assert denver.pushes == []
    assert (await states(repo))["f0"][:2] == ("failing", 1)
    assert worker.inflight == {}
    assert worker.last_error == "RuntimeError: targets unreadable"


async def test_the_batch_size_bounds_each_push(berlin: Any) -> None:
    site, repo = berlin
    denver, clock = Denver(each("applied")), FakeClock()
    await queue(repo, ("flavor", "f0"), ("flavor", "f1"), ("flavor", "f2"))
    worker = worker_for(site, repo, denver, clock, batch_size=2)
    assert await worker.step() == 0.0
    assert await worker.step() == 0.0
    assert [len(p) for p in denver.pushes] == [2, 1]
    assert await worker.step() > 0  # nothing left
    assert len(denver.pushes) == 2


async def test_a_hand_over_larger_than_a_batch_is_read_from_the_outbox(berlin: Any) -> None:
    site, repo = berlin
    denver, clock = Denver(each("applied")), FakeClock()
    worker = worker_for(site, repo, denver, clock, batch_size=2)
    await worker.step()
    assert worker.known_clear
    await queue(repo, ("flavor", "f0"), ("flavor", "f1"), ("flavor", "f2"))
    entries = [OutboxEntry("Denver", "flavor", f"f{n}", 1, "upsert", rank=0) for n in range(3)]
    worker.offer(entries)  # more than a batch: dropped, the outbox is read instead
    assert worker.fresh == [] and not worker.known_clear
    await worker.step()
    await worker.step()
    assert sorted(i["key"] for push in denver.pushes for i in push) == ["f0", "f1", "f2"]


async def test_a_delete_goes_without_a_row(berlin: Any) -> None:
    site, repo = berlin
    denver, clock = Denver(each("applied")), FakeClock()
    await queue(repo, ("flavor", "f0"), op="delete")
    await worker_for(site, repo, denver, clock).step()
    ((item,),) = denver.pushes
    assert item["op"] == "delete"
    assert "row" not in item and "targets" not in item


async def test_running_loops_push_what_is_queued_and_stop(berlin: Any) -> None:
    site, repo = berlin
    denver, clock = Denver(each("applied")), FakeClock()
    worker = worker_for(site, repo, denver, clock)
    worker.concurrency = 2
    worker.start()
    try:

        async def delivered() -> bool:
            return {s for s, _, _ in (await states(repo)).values()} == {"done"}

        await queue(repo, ("flavor", "f0"), ("flavor", "f1"))
        worker.wake()
        await eventually(delivered, within=10, what="both flavors pushed")
        await queue(repo, ("flavor", "f2"))
        worker.wake()
        await eventually(delivered, within=10, what="the third flavor pushed")
        pushed = [i["key"] for push in denver.pushes for i in push]
        assert sorted(pushed) == ["f0", "f1", "f2"]  # each once, by either loop
    finally:
        await worker.stop()
    assert all(task.done() for task in worker._tasks)


async def test_work_woken_for_while_a_loop_looks_at_the_outbox_is_pushed_at_once(
    berlin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a loop's look at the outbox awaits the server: a row queued and woken
    for meanwhile was left until the idle timer (30 s) when the look ended finding
    nothing. The timers are made an hour here: only the wake can bring the push."""
    site, repo = berlin
    monkeypatch.setattr(delivery_module, "CLEAR_IDLE_SECONDS", 3600.0)
    monkeypatch.setattr(delivery_module, "MAX_IDLE_SECONDS", 3600.0)
    denver, clock = Denver(each("applied")), FakeClock()
    worker = worker_for(site, repo, denver, clock)
    looking, answer = asyncio.Event(), asyncio.Event()
    next_due = repo.next_due

    async def slow_next_due(target: str) -> float | None:
        due = await next_due(target)
        looking.set()
        await answer.wait()  # the server takes its time
        return due

    async def pushed() -> bool:
        return bool(denver.pushes)

    monkeypatch.setattr(repo, "next_due", slow_next_due)
    worker.start()
    try:
        await looking.wait()  # the loop found the outbox empty and is still looking
        await queue(repo, ("flavor", "f0"))
        worker.wake()
        answer.set()
        await eventually(pushed, within=10, what="f0 pushed")
    finally:
        await worker.stop()
    assert [i["key"] for push in denver.pushes for i in push] == ["f0"]


def delivery_for(site: InProcessSite, repo: SyncRepository, denver: Denver) -> Delivery:
    ctx = dataclasses.replace(
        site.app.state.ctx,
        http=httpx.AsyncClient(transport=httpx.MockTransport(denver.handle)),
        peers={"Denver": "http://denver.test"},
    )
    return Delivery(ctx=ctx, repo=repo, forwarded_targets=lambda kind, key: None)


async def test_delivery_keeps_one_worker_per_peer_and_wakes_those_with_work(
    berlin: Any,
) -> None:
    site, repo = berlin
    denver = Denver(each("applied"))
    delivery = delivery_for(site, repo, denver)
    try:
        assert delivery.worker("Denver") is delivery.worker("Denver")
        assert delivery.breaker_states() == {"Denver": "closed"}
        await queue(repo, ("flavor", "f0"))
        await delivery.wake_all()

        async def delivered() -> bool:
            return (await states(repo))["f0"][0] == "done"

        await eventually(delivered, within=10, what="f0 pushed to Denver")
        assert delivery.inflight_counts() == {"Denver": 0}
        await delivery.forget("Denver")
        assert delivery.breaker_states() == {}
        await delivery.forget("Denver")  # twice: nothing to stop
    finally:
        await delivery.stop()
    assert delivery.workers == {}


async def test_an_open_breaker_holds_a_hand_over_without_spinning(berlin: Any) -> None:
    site, repo = berlin
    denver, clock = Denver(lambda _items: httpx.Response(503)), FakeClock()
    await queue(repo, ("flavor", "f0"))
    worker = worker_for(site, repo, denver, clock, threshold=1)
    await worker.step()
    assert worker.breaker.state == "open"
    worker.offer([OutboxEntry("Denver", "flavor", "f1", 1, "upsert", rank=0)])

    steps = 0
    step = worker.step

    async def counted() -> float:
        nonlocal steps
        steps += 1
        if steps > 50:  # it spins without yielding: end it, the assertion says so
            raise asyncio.CancelledError
        return await step()

    worker.step = counted  # type: ignore[method-assign]
    loop = asyncio.create_task(worker._loop(asyncio.Event()))
    for _ in range(5):  # let the loop run as far as it goes
        await asyncio.sleep(0)
    loop.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await loop
    # One look, then a wait for the cool-down: the site's event loop stays free.
    assert steps == 1
    assert [e.key for e in worker.fresh] == ["f1"]  # kept for when the peer is back
    assert len(denver.pushes) == 1
