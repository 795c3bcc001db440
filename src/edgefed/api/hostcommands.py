"""The command channel between a site and its host agents: ``HostCommandQueue``.

Two rooms meet here. The compute driver that runs guests on agents (``drivers.agent``)
submits a command for a host and awaits its answer; the inventory's agent routes hand
an agent the commands of its own host (a long poll) and take its answers and reports.
Neither imports the other: both hold this queue, which the inventory service puts in
``SiteContext.host_commands``.

Commands are rows first (``store.commands``) and futures second: the row survives a
restart of the site, the future only wakes the submitter sooner. Every wait is
bounded: a submitter waits until the command's deadline, then fails it with the
reason; an agent's poll returns after ``wait`` seconds with nothing.

What agents report about their guests (power changes, the guests they found after a
restart) goes to the listeners (``listen``): the driver, which tells the compute
service.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgefed.store.commands import CommandRecord, HostCommands, NewCommand
from edgefed.store.engine import Store

log = logging.getLogger("edgefed.hostcommands")


@dataclass(frozen=True, slots=True)
class GuestReport:
    """What an agent says of its guests: their power states (``full``: every guest the
    host has, so those not listed are gone), and the hypervisor's facts."""

    host: str
    guests: Mapping[str, int]
    full: bool = False
    facts: Mapping[str, Any] = field(default_factory=dict)


ReportListener = Callable[[GuestReport], Awaitable[None]]


class HostCommandQueue:
    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self.commands = HostCommands(store)
        self.clock = clock
        # A random id per site process: an agent that sees it change knows the site
        # restarted, and reports its guests again.
        self.instance = uuid.uuid4().hex
        self._answers: dict[str, asyncio.Future[CommandRecord]] = {}
        self._pending: dict[str, asyncio.Event] = {}
        # Per host, how many times its agent said it restarted (in this process): a poll
        # still waiting from before that is a dead agent's, its answer goes nowhere.
        self._generation: dict[str, int] = {}
        self._listeners: list[ReportListener] = []

    # -- the submitting side -------------------------------------------------------------

    async def submit(
        self,
        *,
        host: str,
        kind: str,
        timeout: float,
        server_id: str | None = None,
        payload: Mapping[str, Any] | None = None,
        reuse: bool = True,
    ) -> CommandRecord:
        """Queue a command for ``host`` and return it answered (``state`` done or
        failed, ``error`` saying why). With ``reuse``, an open command of the same kind
        for the same server (a site restarted with it in flight) is awaited instead of
        a new one, with a fresh deadline: the agent could not answer a stopped site."""
        now = self.clock()
        record = None
        if kind == "destroy" and server_id is not None:
            # What the agent has not taken yet need not run at all (a spawn of a server
            # deleted while it built); what it has, it runs before the destroy (in order).
            # Their submitters learn it now, not at their deadline.
            await self._settle(
                await self.commands.drop_queued(
                    server_id=server_id, error="superseded by a destroy", now=now
                )
            )
        if reuse and server_id is not None:
            record = await self.commands.open_for(server_id=server_id, kind=kind)
            if record is not None:
                await self.commands.extend(record.id, deadline=now + timeout)
        if record is None:
            record = await self.commands.add(
                NewCommand(
                    id=str(uuid.uuid4()),
                    host=host,
                    kind=kind,
                    server_id=server_id,
                    payload=dict(payload or {}),
                    deadline=now + timeout,
                    created_at=now,
                )
            )
        return await self._await(record, host=record.host, timeout=timeout)

    async def _await(self, record: CommandRecord, *, host: str, timeout: float) -> CommandRecord:
        future = self._answers.get(record.id)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._answers[record.id] = future
        self._wake(host)
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(future)
        except TimeoutError:
            error = (
                f"the agent of host {host} did not answer the {record.kind} command "
                f"within {timeout:g} s"
            )
            await self.commands.fail([record.id], error=error, now=self.clock())
            found = await self.commands.get(record.id)
            assert found is not None
            return found
        finally:
            self._answers.pop(record.id, None)

    def _resolve(self, record: CommandRecord) -> None:
        future = self._answers.pop(record.id, None)
        if future is not None and not future.done():
            future.set_result(record)

    async def _settle(self, command_ids: Sequence[str]) -> None:
        """Hand the submitters of commands the site failed itself their answer."""
        for command_id in command_ids:
            record = await self.commands.get(command_id)
            if record is not None:
                self._resolve(record)

    async def fail_host(self, host: str, *, reason: str) -> int:
        """Fail every open command of ``host`` (its agent went away), saying why."""
        open_ = [c for c in await self.commands.open_commands() if c.host == host]
        failed = await self.commands.fail([c.id for c in open_], error=reason, now=self.clock())
        await self._settle(failed)
        return len(failed)

    async def expire(self) -> int:
        """Fail the open commands past their deadline that nobody awaits any more (their
        submitter was stopped); returns how many."""
        now = self.clock()
        overdue = [
            c.id
            for c in await self.commands.open_commands()
            if c.deadline < now and c.id not in self._answers
        ]
        return len(
            await self.commands.fail(overdue, error="no answer before the deadline", now=now)
        )

    # -- the agent's side ----------------------------------------------------------------

    def _event(self, host: str) -> asyncio.Event:
        event = self._pending.get(host)
        if event is None:
            event = self._pending[host] = asyncio.Event()
        return event

    def _wake(self, host: str) -> None:
        self._event(host).set()

    async def poll(self, *, host: str, wait: float, restarted: bool = False) -> list[CommandRecord]:
        """The queued commands of ``host`` (now sent), waiting up to ``wait`` seconds for
        one; ``restarted``: the agent lost what it had been sent, so send it again."""
        if restarted:
            # The polls of the agent that died (the site's side never saw it go) are
            # dismissed first, so none of them claims what the new one is to be sent.
            self._generation[host] = self._generation.get(host, 0) + 1
            self._wake(host)
            requeued = await self.commands.requeue_sent(host=host)
            if requeued:
                log.info("host %s restarted its agent: %d command(s) sent again", host, requeued)
        generation = self._generation.get(host, 0)
        deadline = self.clock() + wait
        while True:
            event = self._event(host)
            event.clear()
            if self._generation.get(host, 0) != generation:
                return []  # a newer agent polls for this host
            found = await self.commands.claim(host=host, now=self.clock())
            if found and self._generation.get(host, 0) != generation:
                await self.commands.requeue([c.id for c in found])
                self._wake(host)  # for the newer agent's poll
                return []
            left = deadline - self.clock()
            if found or left <= 0:
                return found
            try:
                async with asyncio.timeout(left):
                    await event.wait()
            except TimeoutError:
                return []

    async def answer(
        self,
        *,
        host: str,
        command_id: str,
        result: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> CommandRecord | None:
        """Record the answer of ``host`` to one of its open commands; None when it has no
        such command (another host's, unknown, or already answered): nothing changes."""
        record = await self.commands.finish(
            command_id, host=host, now=self.clock(), result=result, error=error
        )
        if record is not None:
            self._resolve(record)
        return record

    # -- reports ---------------------------------------------------------------------------

    def listen(self, listener: ReportListener) -> None:
        self._listeners.append(listener)

    async def report(self, report: GuestReport) -> None:
        for listener in list(self._listeners):
            try:
                await listener(report)
            except Exception:
                log.exception("a listener failed on the report of host %s", report.host)
