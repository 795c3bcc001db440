"""The host command queue: a command is a row before any agent sees it; an agent claims
only its own host's queued commands, oldest first, each once even when claims race;
an answer counts once and only from the command's host; overdue commands are failed
with their reason, never left open; a restarted agent gets what it was sent again."""

from __future__ import annotations

import asyncio
from typing import Any

from edgefed.store.commands import HostCommands, NewCommand
from edgefed.store.engine import Store


def command(command_id: str, *, host: str = "h1", at: float = 1.0, **kw: Any) -> NewCommand:
    return NewCommand(
        id=command_id, host=host, kind=kw.pop("kind", "spawn"), deadline=100.0, created_at=at, **kw
    )


async def test_a_command_is_queued_and_read_back(store: Store) -> None:
    queue = HostCommands(store)
    made = await queue.add(command("c1", server_id="s1", payload={"image": "i1"}))
    assert (made.state, made.open, made.payload) == ("queued", True, {"image": "i1"})
    assert await queue.get("c1") == made
    assert await queue.get("c2") is None


async def test_an_agent_claims_its_hosts_queued_commands_oldest_first(store: Store) -> None:
    queue = HostCommands(store)
    await queue.add(command("late", at=3.0))
    await queue.add(command("early", at=1.0))
    await queue.add(command("other-host", host="h2", at=0.5))
    claimed = await queue.claim(host="h1", now=10.0)
    assert [c.id for c in claimed] == ["early", "late"]
    sent = await queue.get("early")
    assert sent is not None and (sent.state, sent.sent_at) == ("sent", 10.0)
    assert await queue.claim(host="h1", now=11.0) == []  # claimed once
    assert [c.id for c in await queue.claim(host="h2", now=11.0)] == ["other-host"]


async def test_a_claim_takes_at_most_its_limit(store: Store) -> None:
    queue = HostCommands(store)
    for n in range(5):
        await queue.add(command(f"c{n}", at=float(n)))
    assert [c.id for c in await queue.claim(host="h1", now=10.0, limit=2)] == ["c0", "c1"]
    assert [c.id for c in await queue.claim(host="h1", now=10.0, limit=10)] == ["c2", "c3", "c4"]


async def test_racing_claims_take_each_command_once(store: Store) -> None:
    queue = HostCommands(store)
    for n in range(12):
        await queue.add(command(f"c{n:02}", at=float(n)))
    claims = await asyncio.gather(*(queue.claim(host="h1", now=5.0, limit=4) for _ in range(6)))
    taken = [c.id for claim in claims for c in claim]
    assert sorted(taken) == [f"c{n:02}" for n in range(12)]  # every one, none twice


async def test_an_answer_counts_once_and_only_from_the_commands_host(store: Store) -> None:
    queue = HostCommands(store)
    await queue.add(command("c1"))
    await queue.claim(host="h1", now=2.0)
    assert await queue.finish("c1", host="h2", now=3.0, result={"x": 1}) is None
    done = await queue.finish("c1", host="h1", now=3.0, result={"pid": 42})
    assert done is not None
    assert (done.state, done.result, done.error, done.finished_at) == (
        "done",
        {"pid": 42},
        None,
        3.0,
    )
    assert not done.open
    assert await queue.finish("c1", host="h1", now=4.0, error="late") is None
    again = await queue.get("c1")
    assert again is not None and again.state == "done"


async def test_an_error_fails_the_command_with_its_reason_kept_short(store: Store) -> None:
    queue = HostCommands(store)
    await queue.add(command("c1"))
    failed = await queue.finish("c1", host="h1", now=3.0, error="x" * 5000)
    assert failed is not None and failed.state == "failed"
    assert failed.error == "x" * 2000


async def test_the_open_command_of_a_server_is_found_again(store: Store) -> None:
    queue = HostCommands(store)
    await queue.add(command("first", server_id="s1", at=1.0))
    await queue.add(command("second", server_id="s1", at=2.0))
    await queue.add(command("stop", server_id="s1", kind="stop", at=3.0))
    found = await queue.open_for(server_id="s1", kind="spawn")
    assert found is not None and found.id == "second"  # the newest open one
    await queue.finish("second", host="h1", now=4.0)
    found = await queue.open_for(server_id="s1", kind="spawn")
    assert found is not None and found.id == "first"
    await queue.finish("first", host="h1", now=4.0)
    assert await queue.open_for(server_id="s1", kind="spawn") is None
    assert [c.id for c in await queue.open_commands()] == ["stop"]


async def test_overdue_commands_are_failed_once(store: Store) -> None:
    queue = HostCommands(store)
    for name in ("a", "b", "c"):
        await queue.add(command(name))
    await queue.finish("c", host="h1", now=2.0)
    assert await queue.fail([], error="x", now=3.0) == []
    assert sorted(await queue.fail(["a", "b", "c", "zz"], error="host down", now=3.0)) == ["a", "b"]
    assert await queue.fail(["a"], error="again", now=4.0) == []
    a = await queue.get("a")
    assert a is not None and (a.state, a.error, a.finished_at) == ("failed", "host down", 3.0)
    c = await queue.get("c")
    assert c is not None and c.state == "done"  # an answered command keeps its answer


async def test_a_restarted_agent_gets_what_it_was_sent_again(store: Store) -> None:
    queue = HostCommands(store)
    await queue.add(command("c1"))
    await queue.add(command("c2", at=2.0))
    await queue.add(command("elsewhere", host="h2"))
    await queue.claim(host="h1", now=5.0)
    await queue.claim(host="h2", now=5.0)
    await queue.finish("c2", host="h1", now=6.0)
    assert await queue.requeue_sent(host="h1") == 1
    again = await queue.claim(host="h1", now=7.0)
    assert [c.id for c in again] == ["c1"]
    other = await queue.get("elsewhere")
    assert other is not None and other.state == "sent"  # another host's are left


async def test_a_deadline_is_extended(store: Store) -> None:
    queue = HostCommands(store)
    await queue.add(command("c1"))
    await queue.extend("c1", deadline=500.0)
    found = await queue.get("c1")
    assert found is not None and found.deadline == 500.0


async def test_pruning_forgets_old_answers_only(store: Store) -> None:
    queue = HostCommands(store)
    for name in ("old", "new", "open"):
        await queue.add(command(name))
    await queue.finish("old", host="h1", now=10.0)
    await queue.finish("new", host="h1", now=50.0)
    assert await queue.prune(finished_before=20.0) == 1
    assert await queue.get("old") is None
    assert await queue.get("new") is not None
    assert await queue.get("open") is not None


async def test_a_destroy_drops_only_the_servers_commands_no_agent_has(store: Store) -> None:
    queue = HostCommands(store)
    await queue.add(command("taken", server_id="s1", at=1.0))
    await queue.claim(host="h1", now=2.0)
    await queue.add(command("waiting", server_id="s1", at=3.0))
    await queue.add(command("other", server_id="s2", at=3.0))
    dropped = await queue.drop_queued(server_id="s1", error="superseded by a destroy", now=4.0)
    assert dropped == ["waiting"]
    waiting = await queue.get("waiting")
    assert waiting is not None
    assert (waiting.state, waiting.error) == ("failed", "superseded by a destroy")
    taken = await queue.get("taken")
    assert taken is not None and taken.state == "sent"  # the agent has it: it answers
    other = await queue.get("other")
    assert other is not None and other.state == "queued"
