"""The settler coalesces push outcomes that arrive together into few transactions, and
each caller returns once its own outcome is written, or with the error that stopped
it. The outbox here is a stand-in that records each transaction."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from edgefed.store.sync import OutboxEntry, Outcome, delivery_rank
from edgefed.sync.settler import Settler


class Outbox:
    """Records each ``settle_many`` (one transaction); may be told to fail, or to hold
    the first transaction until released."""

    def __init__(self) -> None:
        self.transactions: list[list[str]] = []
        self.fail: Exception | None = None
        self.hold = asyncio.Event()
        self.hold.set()

    async def settle_many(self, outcomes: list[Outcome]) -> None:
        await self.hold.wait()
        if self.fail is not None:
            raise self.fail
        self.transactions.append([o.target for o in outcomes])


def entry(key: str) -> OutboxEntry:
    return OutboxEntry(
        "Denver", "project", key, 1, "upsert", rank=delivery_rank("project", "upsert")
    )


async def settle(settler: Settler, target: str) -> None:
    await settler.settle(target, done=[entry("p1")], failed=[], now=1.0)


async def test_outcomes_that_arrive_while_one_is_written_share_the_next_transaction() -> None:
    outbox = Outbox()
    outbox.hold.clear()
    settler = Settler(outbox)  # type: ignore[arg-type]
    first = asyncio.create_task(settle(settler, "A"))
    await asyncio.sleep(0)  # the first transaction starts, and is held
    rest = [asyncio.create_task(settle(settler, t)) for t in ("B", "C", "D")]
    await asyncio.sleep(0)
    outbox.hold.set()
    await asyncio.gather(first, *rest)
    assert outbox.transactions == [["A"], ["B", "C", "D"]]


async def test_a_caller_returns_only_once_its_outcome_is_written() -> None:
    outbox = Outbox()
    outbox.hold.clear()
    settler = Settler(outbox)  # type: ignore[arg-type]
    task = asyncio.create_task(settle(settler, "A"))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not task.done()
    outbox.hold.set()
    await task
    assert outbox.transactions == [["A"]]


async def test_a_failed_transaction_fails_each_of_its_callers_and_the_next_goes_on() -> None:
    outbox = Outbox()
    outbox.fail = RuntimeError("disk full")
    settler = Settler(outbox)  # type: ignore[arg-type]
    results: list[Any] = await asyncio.gather(
        settle(settler, "A"), settle(settler, "B"), return_exceptions=True
    )
    assert [str(r) for r in results] == ["disk full", "disk full"]
    outbox.fail = None
    await settle(settler, "C")  # the settler is not stuck
    assert outbox.transactions == [["C"]]


async def test_drain_waits_for_what_is_being_written_and_swallows_its_error() -> None:
    outbox = Outbox()
    outbox.hold.clear()
    outbox.fail = RuntimeError("gone")
    settler = Settler(outbox)  # type: ignore[arg-type]
    caller = asyncio.create_task(settle(settler, "A"))
    await asyncio.sleep(0)
    outbox.hold.set()
    await settler.drain()  # no error: the caller has it
    with pytest.raises(RuntimeError, match="gone"):
        await caller
    idle = Settler(outbox)  # type: ignore[arg-type]
    await idle.drain()  # nothing written yet: nothing to wait for
