"""The command channel between a site and its host agents (``HostCommandQueue``), with
the submitting driver and the polling agent both played by the test: a submitter gets
the answer of the command's own host, or a failure that says why (no answer in time,
the host gone); a re-submitted operation awaits the command already open; a destroy
drops what no agent took; an agent's poll waits for work and gets again what it lost;
a failing report listener does not silence the others."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edgefed.api.hostcommands import GuestReport, HostCommandQueue
from edgefed.store.commands import CommandRecord, NewCommand
from edgefed.store.engine import Store
from edgefed.testkit.clock import FakeClock
from edgefed.testkit.wait import eventually

# Long enough never to run out while the test answers; the clock-driven deadlines are
# the fake clock's, the waits on futures asyncio's.
PATIENT = 30.0


@pytest.fixture
async def store(tmp_path: Path, database_url: str | None) -> AsyncIterator[Store]:
    opened = await Store.open(database_url or f"sqlite:///{tmp_path / 'site.db'}")
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def queue(store: Store, clock: FakeClock) -> HostCommandQueue:
    return HostCommandQueue(store, clock=clock)


def submitted(queue: HostCommandQueue, **kw: object) -> asyncio.Task[CommandRecord]:
    """A submitter waiting in the background for its answer."""
    args: dict[str, object] = {"host": "h1", "kind": "spawn", "timeout": PATIENT, **kw}
    return asyncio.create_task(queue.submit(**args))  # type: ignore[arg-type]


async def take(queue: HostCommandQueue, host: str = "h1") -> list[CommandRecord]:
    """What the agent of ``host`` gets on its next poll, once there is something."""
    return await queue.poll(host=host, wait=PATIENT)


async def left_open(
    queue: HostCommandQueue, clock: FakeClock, command_id: str, *, server_id: str | None = None
) -> CommandRecord:
    """A spawn whose submitter is gone (stopped, or the site restarted), due in 5 s."""
    new = NewCommand(
        id=command_id,
        host="h1",
        kind="spawn",
        server_id=server_id,
        deadline=clock.now + 5,
        created_at=clock.now,
    )
    return await queue.commands.add(new)


async def test_a_submitter_gets_the_answer_its_host_gives(queue: HostCommandQueue) -> None:
    waiting = submitted(queue, server_id="s1", payload={"image": "i1"})
    (command,) = await take(queue)
    assert (command.kind, command.server_id, command.payload) == ("spawn", "s1", {"image": "i1"})
    assert (await queue.commands.get(command.id)).state == "sent"  # type: ignore[union-attr]

    answered = await queue.answer(host="h1", command_id=command.id, result={"pid": 42})
    done = await asyncio.wait_for(waiting, 5)
    assert done == answered
    assert (done.state, done.result, done.error) == ("done", {"pid": 42}, None)


async def test_another_hosts_answer_changes_nothing(queue: HostCommandQueue) -> None:
    waiting = submitted(queue)
    (command,) = await take(queue)
    assert await queue.answer(host="h2", command_id=command.id, result={}) is None
    assert await queue.answer(host="h1", command_id="no-such-command", result={}) is None
    assert not waiting.done()

    failed = await queue.answer(host="h1", command_id=command.id, error="no space left")
    assert failed is not None and (failed.state, failed.error) == ("failed", "no space left")
    assert (await asyncio.wait_for(waiting, 5)).error == "no space left"
    # Answered once: a second answer is refused too.
    assert await queue.answer(host="h1", command_id=command.id, result={}) is None


async def test_no_answer_in_time_fails_the_command_saying_why(queue: HostCommandQueue) -> None:
    record = await queue.submit(host="h1", kind="reboot", timeout=0.05, server_id="s1")
    assert record.state == "failed"
    assert record.error == "the agent of host h1 did not answer the reboot command within 0.05 s"
    assert record.result == {"unavailable": True}
    # The agent comes too late: there is nothing left for it to run.
    assert await queue.poll(host="h1", wait=0) == []


async def test_a_resubmitted_operation_awaits_the_open_command_with_a_new_deadline(
    queue: HostCommandQueue, clock: FakeClock
) -> None:
    # A site restarted with this spawn in flight: the row is all that is left of it.
    old = await left_open(queue, clock, "c-old", server_id="s1")
    clock.advance(60)
    waiting = submitted(queue, server_id="s1", timeout=PATIENT)

    async def extended() -> bool:
        found = await queue.commands.get(old.id)
        return found is not None and found.deadline == clock.now + PATIENT

    await eventually(extended, within=5, what="the open spawn given a new deadline")
    (command,) = await take(queue)
    assert command.id == old.id
    assert len(await queue.commands.open_commands()) == 1
    await queue.answer(host="h1", command_id=old.id, result={})
    assert (await asyncio.wait_for(waiting, 5)).id == old.id

    # Without reuse, the same operation is a new command.
    again = submitted(queue, server_id="s1", reuse=False)
    (fresh,) = await take(queue)
    assert fresh.id != old.id
    await queue.answer(host="h1", command_id=fresh.id, result={})
    await asyncio.wait_for(again, 5)


async def test_a_destroy_drops_what_no_agent_took_and_keeps_what_it_runs(
    queue: HostCommandQueue, clock: FakeClock
) -> None:
    running = submitted(queue, kind="reboot", server_id="s1")
    (taken,) = await take(queue)
    spawn = submitted(queue, kind="spawn", server_id="s1")
    other = submitted(queue, kind="spawn", server_id="s2")
    await eventually(lambda: _open_count(queue, 3), within=5, what="three open commands")

    clock.advance(1)
    destroy = submitted(queue, kind="destroy", server_id="s1")
    # Told at once, not at its deadline PATIENT seconds away.
    dropped = await asyncio.wait_for(spawn, 5)
    assert (dropped.state, dropped.error) == ("failed", "superseded by a destroy")
    await eventually(lambda: _open_count(queue, 3), within=5, what="the destroy queued")
    # The agent gets the other server's spawn and the destroy, in the order submitted;
    # the reboot it already runs stays open until it answers.
    polled = await take(queue)
    assert [(c.kind, c.server_id) for c in polled] == [("spawn", "s2"), ("destroy", "s1")]
    assert (await queue.commands.get(taken.id)).open  # type: ignore[union-attr]
    for command in (taken, *polled):
        await queue.answer(host="h1", command_id=command.id, result={})
    await asyncio.wait_for(asyncio.gather(running, other, destroy), 5)


async def _open_count(queue: HostCommandQueue, n: int) -> bool:
    return len(await queue.commands.open_commands()) == n


async def test_a_host_gone_down_fails_its_open_commands_only(queue: HostCommandQueue) -> None:
    first = submitted(queue, server_id="s1")
    second = submitted(queue, kind="stop", server_id="s2")
    elsewhere = submitted(queue, host="h2", server_id="s3")
    await eventually(lambda: _open_count(queue, 3), within=5, what="three open commands")

    assert await queue.fail_host("h1", reason="host h1 is down") == 2
    for task in (first, second):
        failed = await asyncio.wait_for(task, 5)
        assert (failed.state, failed.error) == ("failed", "host h1 is down")
    assert not elsewhere.done()
    assert await queue.fail_host("h1", reason="host h1 is down") == 0

    (command,) = await take(queue, "h2")
    await queue.answer(host="h2", command_id=command.id, result={})
    assert (await asyncio.wait_for(elsewhere, 5)).state == "done"


async def test_expiry_fails_overdue_commands_nobody_awaits(
    queue: HostCommandQueue, clock: FakeClock
) -> None:
    # Left behind by a submitter that was stopped; past its deadline.
    await left_open(queue, clock, "orphan")
    awaited = submitted(queue, server_id="s1", timeout=PATIENT)
    await eventually(lambda: _open_count(queue, 2), within=5, what="two open commands")
    clock.advance(PATIENT + 10)  # both deadlines passed on the site's clock

    assert await queue.expire() == 1
    orphan = await queue.commands.get("orphan")
    assert orphan is not None and (orphan.state, orphan.error) == (
        "failed",
        "no answer before the deadline",
    )
    assert not awaited.done()  # its submitter still waits, and fails it itself
    assert await queue.expire() == 0
    (command,) = await take(queue)
    await queue.answer(host="h1", command_id=command.id, result={})
    assert (await asyncio.wait_for(awaited, 5)).state == "done"


async def test_a_poll_waits_for_work_and_returns_empty_when_there_is_none(
    queue: HostCommandQueue,
) -> None:
    assert await queue.poll(host="h1", wait=0.05) == []
    polling = asyncio.create_task(take(queue))
    waiting = submitted(queue, server_id="s1")
    # Answered by the submit, well before its wait of PATIENT seconds.
    (command,) = await asyncio.wait_for(polling, 5)
    await queue.answer(host="h1", command_id=command.id, result={})
    await asyncio.wait_for(waiting, 5)


async def test_a_restarted_agent_gets_what_it_was_sent_again(queue: HostCommandQueue) -> None:
    waiting = submitted(queue, server_id="s1")
    (sent,) = await take(queue)
    assert await queue.poll(host="h1", wait=0) == []  # sent once, not twice
    (again,) = await queue.poll(host="h1", wait=0, restarted=True)
    assert again.id == sent.id
    await queue.answer(host="h1", command_id=sent.id, result={})
    await asyncio.wait_for(waiting, 5)


async def test_a_dead_agents_waiting_poll_does_not_take_the_new_agents_work(
    queue: HostCommandQueue,
) -> None:
    """An agent killed during its long poll leaves that poll waiting at the site (nothing
    tells it the agent is gone); the work for its successor must not go to it."""
    dead = asyncio.create_task(take(queue))

    async def polling_started() -> bool:
        return "h1" in queue._pending

    await eventually(polling_started, what="the dead agent's poll under way")
    assert await queue.poll(host="h1", wait=0, restarted=True) == []  # the new agent
    assert await asyncio.wait_for(dead, 5) == []  # dismissed, empty-handed
    polling = asyncio.create_task(take(queue))
    waiting = submitted(queue, server_id="s1")
    (command,) = await asyncio.wait_for(polling, 5)
    await queue.answer(host="h1", command_id=command.id, result={})
    assert (await asyncio.wait_for(waiting, 5)).state == "done"


async def test_every_listener_hears_a_report_even_after_one_fails(
    queue: HostCommandQueue,
) -> None:
    heard: list[tuple[str, GuestReport]] = []

    async def broken(report: GuestReport) -> None:
        raise RuntimeError("listener bug")

    async def driver(report: GuestReport) -> None:
        heard.append(("driver", report))

    queue.listen(broken)
    queue.listen(driver)
    report = GuestReport(host="h1", guests={"s1": 1}, full=True)
    await queue.report(report)
    assert heard == [("driver", report)]


def test_each_site_process_has_its_own_instance_id(store: Store) -> None:
    # An agent that sees the id change knows the site restarted and reports again.
    assert HostCommandQueue(store).instance != HostCommandQueue(store).instance
