"""The source side: turn captured changes of marked resources into outbox rows.

Database triggers write every change of a synchronisable table to the change log in the
write's own transaction (edgefed.store.sync.triggers). The router here reads the log past its
cursor, works out each resource's targets (its marks, or for a child such as a role
assignment the sites *all* its owners go to), keeps the registered receivers among
them, and queues one outbox row per (resource, target) in the same transaction that
moves the cursor. A crash between two steps replays from the cursor: nothing is lost,
and queueing the same version twice is a no-op.

It wakes on every commit of the store (a SQLAlchemy commit event), so a change reaches
the delivery workers without a polling delay; a slow timer covers anything missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from edgefed.api.context import SiteContext
from edgefed.core.scope_resolve import FleetView
from edgefed.store.sync import (
    CHILDREN,
    KINDS,
    Mark,
    OutboxEntry,
    Ref,
    SyncRepository,
    delivery_rank,
)
from edgefed.sync import targets as target_sets

log = logging.getLogger("edgefed.sync")

PAGE = 5000
# Commits wake the router at once; this is only the safety net (e.g. a hook missed).
IDLE_RECHECK_SECONDS = 5.0
PRUNE_INTERVAL_SECONDS = 30.0
# A page that routes to nobody (a leaf receiver's own changes) moves the cursor in memory;
# it is written with the next page that queues something, or after this long. Rerouting
# an unsaved page after a crash queues nothing, so nothing is lost by waiting.
CURSOR_SAVE_SECONDS = 10.0
MAX_CHILD_DEPTH = 4  # project -> assignment; user -> membership: two levels today


@dataclass
class RoutingTable:
    """Marks and receivers as of one routing pass, with memoised target sets."""

    marks: dict[Ref, list[Mark]]
    receivers: set[str]
    fleet: FleetView
    self_name: str
    _memo: dict[Ref, set[str]] = field(default_factory=dict)
    _resolved: dict[str, set[str]] = field(default_factory=dict)

    def _resolve(self, text: str) -> set[str]:
        """A target set's sites, parsed once per routing pass (every received row of a
        first sync carries the same text)."""
        sites = self._resolved.get(text)
        if sites is None:
            sites = self._resolved[text] = target_sets.resolve(text, self.fleet)
        return sites

    def mark_texts(self, ref: Ref) -> list[str]:
        return [m.targets for m in self.marks.get(ref, [])]

    def targets(self, ref: Ref) -> set[str]:
        """Every site ``ref`` should reach, before keeping only registered receivers."""
        if ref in self._memo:
            return self._memo[ref]
        self._memo[ref] = set()  # guards against cycles
        kind = KINDS.get(ref[0])
        try:
            key_values = kind.key_values(ref[1]) if kind is not None else None
        except ValueError:
            key_values = None
        if kind is None or key_values is None or not kind.travels(key_values):
            return set()  # e.g. a system role assignment: the receiver's own authority
        own = self.marks.get(ref, []) + self.marks.get((ref[0], "*"), [])
        sites: set[str] = set()
        for mark in own:
            sites |= self._resolve(mark.targets)
        sites -= {m.origin for m in own if m.origin}
        owners = kind.owners(key_values)
        if owners:
            shared: set[str] | None = None
            for owner in owners:
                reach = self.targets(owner)
                shared = reach if shared is None else shared & reach
            sites |= shared or set()
        sites.discard(self.self_name)
        self._memo[ref] = sites
        return sites

    def receivers_of(self, ref: Ref) -> set[str]:
        return self.targets(ref) & self.receivers

    def forwarded_targets(self, ref: Ref) -> str | None:
        """The target set a receiver keeps for ``ref`` (to pass it on down a hierarchy)."""
        own = self.marks.get(ref, []) + self.marks.get((ref[0], "*"), [])
        texts = sorted({m.targets for m in own})
        return ",".join(texts) if texts else None


class ChangeRouter:
    def __init__(
        self,
        ctx: SiteContext,
        repo: SyncRepository,
        *,
        on_queued: Callable[[list[OutboxEntry]], None],
    ):
        self.ctx = ctx
        self.repo = repo
        self.on_queued = on_queued
        self.wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._undo_hook: Callable[[], None] | None = None
        self._pruned_at = 0.0
        self._cursor: int | None = None  # ahead of the stored one while unsaved
        self._saved_cursor: int | None = None
        self._cursor_saved_at = 0.0

    async def routing_table(self) -> RoutingTable:
        receivers = set(await self.repo.list_receivers())
        marks: dict[Ref, list[Mark]] = {}
        if receivers:  # a leaf (no receivers) routes nothing: no need for its marks
            for mark in await self.repo.list_marks():
                marks.setdefault((mark.kind, mark.key), []).append(mark)
        assert self.ctx.fleet is not None
        return RoutingTable(
            marks=marks,
            receivers=receivers,
            fleet=self.ctx.fleet,
            self_name=self.ctx.name,
        )

    def start(self) -> None:
        loop = asyncio.get_running_loop()

        def committed() -> None:
            loop.call_soon_threadsafe(self.wake.set)

        self._undo_hook = self.repo.on_commit(committed)
        self._task = asyncio.create_task(self._run(), name="sync-router")

    async def stop(self) -> None:
        if self._undo_hook is not None:
            self._undo_hook()
            self._undo_hook = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            try:
                await self._save_cursor_if_due(force=True)
            except Exception:  # the store may be gone; the next start reroutes the page
                log.warning("could not save the sync change cursor at stop", exc_info=True)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel
                async with asyncio.timeout(IDLE_RECHECK_SECONDS):
                    await self.wake.wait()
            self.wake.clear()
            try:
                while await self.route_once():
                    pass
                await self.maybe_prune()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("routing sync changes failed; retrying")

    async def maybe_prune(self, *, force: bool = False) -> int:
        """Prune the consumed change log, at most every PRUNE_INTERVAL_SECONDS."""
        now = self.ctx.clock()
        if not force and now - self._pruned_at < PRUNE_INTERVAL_SECONDS:
            return 0
        self._pruned_at = now
        await self._save_cursor_if_due(force=True)  # prune only below a saved cursor
        dropped = await self.repo.prune_changes(cursor=await self.repo.cursor())
        if dropped:
            log.info("sync: pruned %d consumed change-log rows", dropped)
        return dropped

    async def route_once(self) -> int:
        """Route one page of the change log; the number of changes consumed."""
        cursor = self._cursor if self._cursor is not None else await self.repo.cursor()
        page = await self.repo.changes_after(cursor, limit=PAGE)
        if not page:
            await self._save_cursor_if_due(force=False)
            return 0
        table = await self.routing_table()
        latest: dict[Ref, tuple[int, str]] = {}
        for change in page:
            if change.kind in KINDS:
                latest[(change.kind, change.key)] = (change.seq, change.op)
        entries = [
            OutboxEntry(target, kind, key, seq, op, rank=delivery_rank(kind, op))
            for (kind, key), (seq, op) in latest.items()
            for target in sorted(table.receivers_of((kind, key)))
        ]
        self._cursor = page[-1].seq
        if entries:
            await self.repo.route(entries, cursor=self._cursor, now=self.ctx.clock())
            self._saved_cursor, self._cursor_saved_at = self._cursor, self.ctx.clock()
            self.on_queued(entries)
        else:
            await self._save_cursor_if_due(force=False)
        return len(page)

    async def _save_cursor_if_due(self, *, force: bool) -> None:
        now = self.ctx.clock()
        if self._cursor is None or self._cursor == self._saved_cursor:
            return  # nothing routed yet, or nothing new since the last save
        if not force and now - self._cursor_saved_at < CURSOR_SAVE_SECONDS:
            return
        await self.repo.route([], cursor=self._cursor, now=now)
        self._saved_cursor, self._cursor_saved_at = self._cursor, now

    async def enqueue_resources(
        self,
        refs: Iterable[Ref],
        *,
        only: set[str] | None = None,
        force: bool = False,
        table: RoutingTable | None = None,
    ) -> int:
        """Queue the current version of ``refs`` (and their children) for their receivers:
        the accepted receivers their marks target, never anyone else."""
        table = table or await self.routing_table()
        expanded = await self._with_children(refs)
        versions = await self.repo.versions_of(expanded)
        entries: list[OutboxEntry] = []
        for ref in expanded:
            version, op = versions[ref]
            for target in sorted(table.receivers_of(ref)):
                if only is None or target in only:
                    entries.append(
                        OutboxEntry(
                            target, ref[0], ref[1], version, op, rank=delivery_rank(ref[0], op)
                        )
                    )
        await self.repo.enqueue(entries, now=self.ctx.clock(), force=force)
        if entries:
            self.on_queued(entries)
        return len(entries)

    async def full_sync(self, receiver: str) -> int:
        """Everything marked that ``receiver`` should hold, queued again (first sync)."""
        table = await self.routing_table()
        refs: list[Ref] = []
        named: list[Ref] = []
        for kind, key in table.marks:
            if kind not in KINDS:
                continue
            if key == "*":
                refs.extend((kind, k) for k in await self.repo.keys_of(kind))
            else:
                named.append((kind, key))
        refs += await self.repo.existing(named)
        return await self.enqueue_resources(refs, only={receiver}, force=True)

    async def _with_children(self, refs: Iterable[Ref]) -> list[Ref]:
        """``refs`` and their descendants, looked up level by level, many parents per query."""
        seen: dict[Ref, None] = {}
        frontier = [r for r in refs if r[0] in KINDS]
        for _ in range(MAX_CHILD_DEPTH):
            fresh = [r for r in dict.fromkeys(frontier) if r not in seen]
            if not fresh:
                break
            seen.update(dict.fromkeys(fresh))
            by_kind: dict[str, list[str]] = {}
            for kind, key in fresh:
                if kind in CHILDREN:
                    by_kind.setdefault(kind, []).append(key)
            frontier = await self.repo.children(by_kind) if by_kind else []
        return list(seen)
