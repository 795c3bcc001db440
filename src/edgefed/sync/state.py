"""The sync engine of one site: router, delivery workers and blob fetcher, wired together.

It lives in ``ctx.slots`` (api/slots.py); the HTTP routes reach it from there.

Registration takes both operators (DESIGN.md §6): an admin of the receiver asks, and the
source only records the request (``pending``) until an admin of the source accepts it,
or the ``sync_accept`` setting or an earlier acceptance approved that site ahead. Only
accepted receivers are routed to, pushed to, and may pull or fetch; and they get only
what is marked for them.
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.requests import HTTPConnection

from edgefed.api.context import SiteContext, site_context
from edgefed.core.errors import ValidationFailed
from edgefed.store.sync import (
    ACCEPTED,
    KINDS,
    ConflictRepository,
    Mark,
    OutboxEntry,
    Ref,
    Revocation,
    SyncReceiver,
    SyncRepository,
    valid_sha256,
)
from edgefed.sync import targets as target_sets
from edgefed.sync.backoff import Backoff
from edgefed.sync.delivery import Delivery
from edgefed.sync.engine import ChangeRouter
from edgefed.sync.images import BlobFetcher
from edgefed.sync.telemetry import SyncTelemetry

log = logging.getLogger("edgefed.sync")


@dataclass
class SyncEngine:
    ctx: SiteContext
    repo: SyncRepository
    router: ChangeRouter = field(init=False)
    receiver: SyncReceiver = field(init=False)
    conflicts: ConflictRepository = field(init=False)
    delivery: Delivery = field(init=False)
    fetcher: BlobFetcher = field(init=False)
    telemetry: SyncTelemetry = field(init=False)
    marks: dict[Ref, list[Mark]] = field(default_factory=dict)
    # The sources this site receives from, read once: every push checks its sender, and
    # only this engine registers or unregisters them (add_source, remove_source).
    _sources: set[str] | None = None

    def __post_init__(self) -> None:
        self.router = ChangeRouter(self.ctx, self.repo, on_queued=self._queued)
        self.receiver = SyncReceiver(
            self.ctx.store,
            max_blob_bytes=self.ctx.settings.max_image_bytes,
            normalise_targets=target_sets.normalise,
        )
        self.conflicts = ConflictRepository(self.ctx.store)
        self.delivery = Delivery(self.ctx, self.repo, forwarded_targets=self.forwarded_targets)
        backoff = Backoff(tuple(self.ctx.settings.sync_backoff_seconds))
        self.fetcher = BlobFetcher(self.ctx, self.repo, backoff=backoff)
        self.telemetry = SyncTelemetry(
            repo=self.repo, conflicts=self.conflicts, delivery=self.delivery, clock=self.ctx.clock
        )

    async def start(self) -> None:
        for text in self.ctx.settings.sync_accept:
            if not isinstance(text, str):
                raise ValidationFailed(
                    "sync_accept lists target sets (strings)", field="sync_accept"
                )
            target_sets.normalise(text)
        await self.repo.release_inflight()  # rows a version before in-memory claims left
        if self.ctx.settings.sync_marks_file:
            await self.load_marks_file(Path(self.ctx.settings.sync_marks_file))
        await self.refresh_marks()
        self.router.start()
        self.fetcher.start()
        await self.telemetry.refresh()
        self.telemetry.start()
        for receiver in await self.repo.list_receivers():
            self.delivery.worker(receiver)
        await self.delivery.wake_all()

    async def stop(self) -> None:
        await self.telemetry.stop()
        await self.router.stop()
        await self.delivery.stop()
        await self.fetcher.stop()

    def _queued(self, entries: list[OutboxEntry]) -> None:
        self.telemetry.wake.set()  # a backlog to report (telemetry idles while there is none)
        by_target: dict[str, list[OutboxEntry]] = {}
        for entry in entries:
            by_target.setdefault(entry.target, []).append(entry)
        for target, queued in by_target.items():
            self.delivery.worker(target).offer(queued)

    async def refresh_marks(self) -> None:
        marks: dict[Ref, list[Mark]] = {}
        for mark in await self.repo.list_marks():
            marks.setdefault((mark.kind, mark.key), []).append(mark)
        self.marks = marks

    async def is_source(self, name: str) -> bool:
        if self._sources is None:
            self._sources = set(await self.repo.list_sources())
        return name in self._sources

    async def add_source(self, name: str) -> None:
        await self.repo.add_source(name, now=self.ctx.clock())
        self._sources = None  # after the write: a read meanwhile saw the old set

    async def remove_source(self, name: str) -> bool:
        try:
            return await self.repo.remove_source(name)
        finally:
            self._sources = None

    def note_applied(
        self, items: list[dict[str, Any]], results: list[dict[str, Any]], *, origin: str
    ) -> None:
        """Keep the marks in memory as ``apply_batch`` left them in the store: an applied
        upsert carrying pass-on targets holds the mark (targets, origin) of its resource,
        an applied delete drops it; other items changed nothing. (Reading them back cost
        a query per push.)"""
        for item, result in zip(items, results, strict=True):
            if result.get("status") != "applied":
                continue
            ref = (str(item.get("kind")), str(item.get("key")))
            targets = item.get("targets")
            if item.get("op") == "delete":
                self.marks.pop(ref, None)
            elif isinstance(targets, str) and targets:
                self.marks[ref] = [Mark(ref[0], ref[1], targets, origin)]

    async def revoke(self, revocations: list[Revocation]) -> None:
        """Make the tokens of these users (on these projects) ineffective here."""
        revoker = self.ctx.revoker
        if revoker is None:
            return
        for r in dict.fromkeys(revocations):
            try:
                await revoker.revoke_user(r.user_id, project_id=r.project_id)
            except Exception:  # a failed revocation must not fail the applied push
                log.exception("revoking the tokens of user %s after a push failed", r.user_id)

    def forwarded_targets(self, kind: str, key: str) -> str | None:
        own = self.marks.get((kind, key), []) + self.marks.get((kind, "*"), [])
        texts = sorted({m.targets for m in own})
        return ",".join(texts) if texts else None

    async def mark(self, *, kind: str, key: str, to: str) -> Mark:
        if kind not in KINDS:
            raise ValidationFailed(
                f"unknown resource kind {kind!r}; one of {', '.join(sorted(KINDS))}", field="kind"
            )
        if key != "*":
            try:
                KINDS[kind].key_values(key)
            except ValueError as exc:
                raise ValidationFailed(str(exc), field="id") from exc
        mark = Mark(kind=kind, key=key, targets=target_sets.normalise(to), origin=None)
        await self.repo.put_mark(mark, now=self.ctx.clock())
        await self.refresh_marks()
        await self.enqueue_marked(kind, key)
        return mark

    async def enqueue_marked(self, kind: str, key: str) -> int:
        if key == "*":
            refs = [(kind, k) for k in await self.repo.keys_of(kind)]
        else:
            refs = [(kind, key)]
        return await self.router.enqueue_resources(refs)

    async def pull_for(self, receiver: str, *, kind: str, key: str) -> int:
        """Queue one resource (and its children) for ``receiver`` now, if it is marked
        for that receiver; 0 if it is not (or does not exist: the two look the same)."""
        table = await self.router.routing_table()
        if receiver not in table.receivers_of((kind, key)):
            return 0
        if not await self.repo.existing([(kind, key)]):
            return 0
        return await self.router.enqueue_resources(
            [(kind, key)], only={receiver}, force=True, table=table
        )

    async def serves_blob(self, receiver: str, sha256: str) -> bool:
        """Whether blob ``sha256`` is the data of an image marked for ``receiver``."""
        if not valid_sha256(sha256):
            return False
        images = await self.repo.images_with_blob(sha256)
        if not images:
            return False
        table = await self.router.routing_table()
        return any(receiver in table.receivers_of(("image", i)) for i in images)

    def accepts_at_once(self, name: str) -> bool:
        """Whether the ``sync_accept`` setting names ``name`` (sites, '@key=value', '*')."""
        if self.ctx.fleet is None:
            return False
        return any(
            name in target_sets.resolve(text, self.ctx.fleet)
            for text in self.ctx.settings.sync_accept
        )

    async def request_receiver(self, name: str) -> tuple[str, int]:
        """``name`` asks to receive from this site: (its state, deliveries queued).
        Accepted (by the setting, or approved ahead) it gets its first full sync now."""
        state = await self.repo.request_receiver(
            name, now=self.ctx.clock(), accept=self.accepts_at_once(name)
        )
        if state != ACCEPTED:
            return state, 0
        return state, await self._start_serving(name)

    async def accept_receiver(self, name: str) -> tuple[str, int]:
        """This site's operator accepts ``name``: (its state, deliveries queued)."""
        before, state = await self.repo.accept_receiver(name, now=self.ctx.clock())
        if state != ACCEPTED or before == ACCEPTED:
            return state, 0
        return state, await self._start_serving(name)

    async def _start_serving(self, name: str) -> int:
        self.delivery.worker(name)
        self.telemetry.wake.set()
        return await self.router.full_sync(name)

    async def remove_receiver(self, name: str) -> bool:
        """Forget a receiver (any state): its registration and everything queued for it."""
        await self.delivery.forget(name)
        removed = await self.repo.remove_receiver(name)
        self.telemetry.wake.set()
        return removed

    async def load_marks_file(self, path: Path) -> None:
        """Marks from a TOML file: ``[[mark]]`` tables with ``kind``, ``id`` and ``to``."""
        try:
            doc = tomllib.loads(path.read_text())
            entries = doc.get("mark", [])
            for entry in entries:
                await self.mark(kind=str(entry["kind"]), key=str(entry["id"]), to=str(entry["to"]))
        except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
            raise ValidationFailed(
                f"cannot read sync marks file {path}: {exc}", field="sync_marks_file"
            ) from exc


def engine_of(conn: HTTPConnection) -> SyncEngine:
    return site_context(conn).slots.require(SyncEngine)
