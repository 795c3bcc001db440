"""The sync engine of one site: router, delivery workers and blob fetcher, wired together.

It lives in ``ctx.services["sync"]``; the HTTP routes reach it from there.
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
from edgefed.store.sync import Mark, OutboxEntry, SyncRepository
from edgefed.store.sync_rows import KINDS, Ref, all_keys, exists
from edgefed.sync import targets as target_sets
from edgefed.sync.backoff import Backoff
from edgefed.sync.delivery import Delivery
from edgefed.sync.engine import ChangeRouter
from edgefed.sync.images import BlobFetcher
from edgefed.sync.telemetry import SyncTelemetry

log = logging.getLogger("edgefed.sync")

SERVICE_KEY = "sync"


@dataclass
class SyncEngine:
    ctx: SiteContext
    repo: SyncRepository
    router: ChangeRouter = field(init=False)
    delivery: Delivery = field(init=False)
    fetcher: BlobFetcher = field(init=False)
    telemetry: SyncTelemetry = field(init=False)
    marks: dict[Ref, list[Mark]] = field(default_factory=dict)
    # The sources this site receives from, read once: every push checks its sender, and
    # only this engine registers or unregisters them (add_source, remove_source).
    _sources: set[str] | None = None

    def __post_init__(self) -> None:
        self.router = ChangeRouter(self.ctx, self.repo, on_queued=self._queued)
        self.delivery = Delivery(self.ctx, self.repo, forwarded_targets=self.forwarded_targets)
        backoff = Backoff(tuple(self.ctx.settings.sync_backoff_seconds))
        self.fetcher = BlobFetcher(self.ctx, self.repo, backoff=backoff)
        self.telemetry = SyncTelemetry(repo=self.repo, delivery=self.delivery, clock=self.ctx.clock)

    async def start(self) -> None:
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
            async with self.ctx.store.read() as conn:
                keys = await all_keys(conn, KINDS[kind])
            refs = [(kind, k) for k in keys]
        else:
            refs = [(kind, key)]
        return await self.router.enqueue_resources(refs)

    async def pull_for(self, receiver: str, *, kind: str, key: str) -> int:
        """Queue one resource (and its children) for ``receiver`` now, marked or not."""
        async with self.ctx.store.read() as conn:
            try:
                found = await exists(conn, kind, key)
            except ValueError:
                found = False
        if not found:
            return 0
        return await self.router.enqueue_resources(
            [(kind, key)], only={receiver}, force=True, extra={receiver}
        )

    async def add_receiver(self, name: str) -> int:
        await self.repo.add_receiver(name, now=self.ctx.clock())
        self.delivery.worker(name)
        return await self.router.full_sync(name)

    async def remove_receiver(self, name: str) -> bool:
        """Forget a receiver: its registration and everything queued for it."""
        await self.delivery.forget(name)
        return await self.repo.remove_receiver(name)

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
    engine: SyncEngine = site_context(conn).services[SERVICE_KEY]
    return engine
