"""A peer's push worker, one step at a time: what it sends, how it settles each item's
answer, when it backs off and when its breaker stops it. The peer is an httpx
``MockTransport``, the clock a fake one; the outbox is the site's real store."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sync_support import Denver, FakeClock, each, queue, states, worker_for

from edgefed.store.sync import OutboxEntry
from edgefed.sync.breaker import CLOSED, OPEN


async def test_a_push_sends_current_rows_parents_first_with_their_targets(berlin: Any) -> None:
    site, repo = berlin
    denver, clock = Denver(each("applied")), FakeClock()
    await queue(repo, ("flavor_access", "f1|p1"), ("flavor", "f0"), ("flavor", "gone"))
    worker = worker_for(site, repo, denver, clock)

    assert await worker.step() == 0.0

    (items,) = denver.pushes
    assert [(i["kind"], i["key"], i["op"]) for i in items] == [
        ("flavor", "gone", "delete"),  # queued as an upsert, gone since: sent as a delete
        ("flavor", "f0", "upsert"),  # by version within a rank
        ("flavor_access", "f1|p1", "delete"),  # the child rank after its parents
    ]
    assert items[1]["row"]["name"] == "f0" and items[1]["targets"] == "Lyon,Nice"
    assert "row" not in items[0] and "targets" not in items[0]
    assert {k: s for k, (s, _, _) in (await states(repo)).items()} == dict.fromkeys(
        ("f0", "gone", "f1|p1"), "done"
    )
    assert worker.inflight == {}  # nothing left claimed


async def test_each_answer_settles_its_own_item(berlin: Any) -> None:
    site, repo = berlin
    verdicts = {"f0": {"status": "duplicate"}, "f1": {"status": "conflict", "error": "held"},
                "f2": {"status": "rejected", "code": 422, "error": "unknown parent"}}  # fmt: skip
    denver, clock = (
        Denver(each(lambda i: {"kind": i["kind"], "key": i["key"], **verdicts[i["key"]]})),
        FakeClock(),
    )
    await queue(repo, ("flavor", "f0"), ("flavor", "f1"), ("flavor", "f2"))

    await worker_for(site, repo, denver, clock).step()

    assert await states(repo) == {
        "f0": ("done", 1, 0.0),
        "f1": ("conflict", 1, 0.0),  # parked: retrying cannot help
        "f2": ("failing", 1, clock.now + 10.0),  # retried after the first backoff delay
    }
    (failing,) = await repo.entries(target="Denver", states=["failing"])
    assert failing["last_error"] == "unknown parent"


async def test_a_failed_item_waits_for_its_backoff_then_goes_again(berlin: Any) -> None:
    site, repo = berlin
    denver, clock = Denver(each("rejected")), FakeClock()
    await queue(repo, ("flavor", "f0"))
    worker = worker_for(site, repo, denver, clock)
    await worker.step()
    assert await worker.step() == pytest.approx(2.0)  # nothing due: look again (bounded)
    assert len(denver.pushes) == 1
    clock.now += 10.0
    denver.answer = each("applied")
    assert await worker.step() == 0.0
    assert len(denver.pushes) == 2 and (await states(repo))["f0"][:2] == ("done", 2)


async def test_failed_pushes_open_the_breaker_which_lets_one_probe_through(
    berlin: Any,
) -> None:
    site, repo = berlin

    def refuse(_items: list[dict[str, Any]]) -> httpx.Response:
        return httpx.Response(503, text="overloaded")

    denver, clock = Denver(refuse), FakeClock()
    await queue(repo, ("flavor", "f0"))
    worker = worker_for(site, repo, denver, clock, threshold=2)
    for _ in range(2):
        await worker.step()
        clock.now += 20.0  # past every backoff delay
    assert worker.breaker.state == OPEN and len(denver.pushes) == 2
    assert worker.last_error is not None and "503" in worker.last_error

    assert await worker.step() == pytest.approx(10.0)  # 30 s of cool-down, 20 gone: wait
    assert len(denver.pushes) == 2
    clock.now += 30.0
    denver.answer = each("applied")
    assert await worker.step() == 0.0  # the probe
    assert worker.breaker.state == CLOSED and len(denver.pushes) == 3
    assert (await states(repo))["f0"][0] == "done"


async def test_a_transport_error_fails_the_whole_batch(berlin: Any) -> None:
    site, repo = berlin

    def cut(_items: list[dict[str, Any]]) -> httpx.Response:
        raise httpx.ConnectError("the link is cut")

    denver, clock = Denver(cut), FakeClock()
    await queue(repo, ("flavor", "f0"), ("flavor", "f1"))
    worker = worker_for(site, repo, denver, clock)
    await worker.step()
    assert {k: s[:2] for k, s in (await states(repo)).items()} == {
        "f0": ("failing", 1), "f1": ("failing", 1),
    }  # fmt: skip
    assert worker.last_error == "ConnectError: the link is cut" and worker.breaker.failures == 1


async def test_rows_handed_over_fresh_are_pushed_without_reading_the_outbox(
    berlin: Any,
) -> None:
    site, repo = berlin
    denver, clock = Denver(each("applied")), FakeClock()
    worker = worker_for(site, repo, denver, clock)
    assert await worker.step() > 0  # an empty outbox: the peer is known clear
    assert worker.known_clear
    await queue(repo, ("flavor", "f1"))
    (fresh,) = await repo.entries(target="Denver")
    entry = OutboxEntry("Denver", "flavor", "f1", int(fresh["version"]), "upsert", rank=0)
    await queue(repo, ("flavor", "f2"))  # in the outbox, not handed over
    worker.offer([entry])
    await worker.step()
    assert [i["key"] for i in denver.pushes[-1]] == ["f1"]  # only the hand-over
    worker.wake()  # an outside wake: look at the outbox again
    await worker.step()
    assert [i["key"] for i in denver.pushes[-1]] == ["f2"]
