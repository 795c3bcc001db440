"""The queue of work a site hands its host agents: one row per command, per host.

A command is persisted before any agent sees it, so a site that restarts (or is killed)
with a spawn in flight finds it again: the compute service re-submits the same work
and gets the open command back instead of a second one. An agent claims the queued
commands of its own host (``claim``), and answers each (``finish``); a row names its
host, and every change is conditioned on it, so one host can neither read nor answer
another's commands. Commands that outlive their deadline, or whose host went down,
are failed with the reason (``fail``), never left open.

States: ``queued`` → ``sent`` (an agent has it) → ``done`` | ``failed``. An agent that
restarts asks for its ``sent`` commands again (``requeue_sent``): every command is
idempotent on the agent's side (a spawn of a guest that runs is a no-op, a destroy of
one that is gone too).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, Float, Index, String, Table, delete, insert, select, update

from edgefed.store.engine import Store
from edgefed.store.records import RecordMapper
from edgefed.store.schema import JsonDoc, metadata

OPEN = ("queued", "sent")

host_commands = Table(
    "host_commands",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("server_id", String(36), nullable=True),
    Column("kind", String(32), nullable=False),
    Column("payload", JsonDoc, nullable=False),
    Column("state", String(16), nullable=False),
    Column("result", JsonDoc, nullable=True),
    Column("error", String(2000), nullable=True),
    Column("deadline", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("sent_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Index("ix_host_commands_host_state", "host", "state"),
)


@dataclass(frozen=True, slots=True)
class CommandRecord:
    id: str
    host: str
    server_id: str | None
    kind: str
    payload: dict[str, Any]
    state: str
    result: dict[str, Any] | None
    error: str | None
    deadline: float
    created_at: float
    sent_at: float | None
    finished_at: float | None

    @property
    def open(self) -> bool:
        return self.state in OPEN


@dataclass(frozen=True, slots=True)
class NewCommand:
    id: str
    host: str
    kind: str
    deadline: float
    created_at: float
    server_id: str | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)


class HostCommands:
    """The command queue of every host of the site."""

    mapper = RecordMapper(CommandRecord)

    def __init__(self, store: Store):
        self.store = store

    async def add(self, new: NewCommand) -> CommandRecord:
        values = {
            "id": new.id,
            "host": new.host,
            "server_id": new.server_id,
            "kind": new.kind,
            "payload": dict(new.payload),
            "state": "queued",
            "deadline": new.deadline,
            "created_at": new.created_at,
        }
        async with self.store.write() as conn:
            await conn.execute(insert(host_commands).values(**values))
        return self.mapper.from_mapping(
            values, result=None, error=None, sent_at=None, finished_at=None
        )

    async def get(self, command_id: str) -> CommandRecord | None:
        async with self.store.read() as conn:
            row = (
                await conn.execute(select(host_commands).where(host_commands.c.id == command_id))
            ).first()
        return self.mapper.one(row) if row else None

    async def open_for(self, *, server_id: str, kind: str) -> CommandRecord | None:
        """The unanswered command of this kind for a server (a re-submitted operation)."""
        async with self.store.read() as conn:
            row = (
                await conn.execute(
                    select(host_commands)
                    .where(
                        (host_commands.c.server_id == server_id)
                        & (host_commands.c.kind == kind)
                        & host_commands.c.state.in_(OPEN)
                    )
                    .order_by(host_commands.c.created_at.desc())
                )
            ).first()
        return self.mapper.one(row) if row else None

    async def open_commands(self) -> list[CommandRecord]:
        async with self.store.read() as conn:
            rows = await conn.execute(
                select(host_commands)
                .where(host_commands.c.state.in_(OPEN))
                .order_by(host_commands.c.created_at, host_commands.c.id)
            )
            return self.mapper.all(rows)

    async def claim(self, *, host: str, now: float, limit: int = 32) -> list[CommandRecord]:
        """The host's queued commands, oldest first, now marked sent."""
        async with self.store.write() as conn:
            rows = await conn.execute(
                select(host_commands)
                .where((host_commands.c.host == host) & (host_commands.c.state == "queued"))
                .order_by(host_commands.c.created_at, host_commands.c.id)
                .limit(limit)
                # PostgreSQL: a racing claim skips the rows this one holds (SQLite has
                # one writer, and no FOR UPDATE to render).
                .with_for_update(skip_locked=True)
            )
            found = self.mapper.all(rows)
            if found:
                await conn.execute(
                    update(host_commands)
                    .where(host_commands.c.id.in_([c.id for c in found]))
                    .values(state="sent", sent_at=now)
                )
        return found

    async def requeue_sent(self, *, host: str) -> int:
        """An agent that restarted lost what it had been sent: queue it again."""
        async with self.store.write() as conn:
            done = await conn.execute(
                update(host_commands)
                .where((host_commands.c.host == host) & (host_commands.c.state == "sent"))
                .values(state="queued", sent_at=None)
            )
        return int(done.rowcount)

    async def requeue(self, command_ids: Sequence[str]) -> int:
        """Commands claimed for an agent that can no longer take them: queue them again
        (those still sent; an answered one stays answered)."""
        if not command_ids:
            return 0
        async with self.store.write() as conn:
            done = await conn.execute(
                update(host_commands)
                .where(
                    host_commands.c.id.in_(list(command_ids)) & (host_commands.c.state == "sent")
                )
                .values(state="queued", sent_at=None)
            )
        return int(done.rowcount)

    async def finish(
        self,
        command_id: str,
        *,
        host: str,
        now: float,
        result: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> CommandRecord | None:
        """Answer an open command of ``host``; None (and nothing changed) when there is
        no such open command of that host."""
        async with self.store.write() as conn:
            done = await conn.execute(
                update(host_commands)
                .where(
                    (host_commands.c.id == command_id)
                    & (host_commands.c.host == host)
                    & host_commands.c.state.in_(OPEN)
                )
                .values(
                    state="failed" if error is not None else "done",
                    result=dict(result) if result is not None else None,
                    error=error[:2000] if error is not None else None,
                    finished_at=now,
                )
            )
            if done.rowcount != 1:
                return None
        return await self.get(command_id)

    async def fail(self, ids: Sequence[str], *, error: str, now: float) -> list[str]:
        """Fail those of ``ids`` still open, for the site (no agent answered): their
        ``result`` says ``unavailable``; the ids it failed."""
        if not ids:
            return []
        async with self.store.write() as conn:
            rows = await conn.execute(
                select(host_commands.c.id).where(
                    host_commands.c.id.in_(list(ids)) & host_commands.c.state.in_(OPEN)
                )
            )
            failed = [r.id for r in rows]
            if failed:
                await conn.execute(
                    update(host_commands)
                    .where(host_commands.c.id.in_(failed))
                    .values(
                        state="failed",
                        error=error[:2000],
                        result={"unavailable": True},
                        finished_at=now,
                    )
                )
        return failed

    async def drop_queued(self, *, server_id: str, error: str, now: float) -> list[str]:
        """Fail the server's commands no agent has yet (a destroy supersedes them); the
        ids it failed, whose submitters are waiting for an answer."""
        async with self.store.write() as conn:
            rows = await conn.execute(
                select(host_commands.c.id)
                .where(
                    (host_commands.c.server_id == server_id) & (host_commands.c.state == "queued")
                )
                # PostgreSQL: a claim racing this one either takes a row first (then it
                # is no longer queued) or waits for this drop.
                .with_for_update()
            )
            dropped = [r.id for r in rows]
            if dropped:
                await conn.execute(
                    update(host_commands)
                    .where(host_commands.c.id.in_(dropped))
                    .values(state="failed", error=error[:2000], finished_at=now)
                )
        return dropped

    async def extend(self, command_id: str, *, deadline: float) -> None:
        async with self.store.write() as conn:
            await conn.execute(
                update(host_commands)
                .where(host_commands.c.id == command_id)
                .values(deadline=deadline)
            )

    async def prune(self, *, finished_before: float) -> int:
        """Forget answered commands older than ``finished_before``."""
        async with self.store.write() as conn:
            done = await conn.execute(
                delete(host_commands).where(
                    host_commands.c.state.not_in(OPEN)
                    & (host_commands.c.finished_at < finished_before)
                )
            )
        return int(done.rowcount)
