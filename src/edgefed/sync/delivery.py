"""Delivery workers: push outbox rows to each receiver, with backoff and a breaker.

One ``PeerWorker`` per receiver runs ``concurrency`` push loops. A loop claims a batch
of due rows (parents first), reads the rows' current content, and sends one signed
``POST /edge/v1/sync/push``. The receiver answers per item; applied, stale and
duplicate items are done, rejected ones are retried after a backoff delay (a parent may
still be on its way), and a ``conflict`` (the receiver holds a row of its own there) is
parked: retrying cannot help until the receiver's operator resolves it, which asks for
the resource again. An answer without per-item results (a transport error, a 5xx, a
refusal of the whole push) fails the batch and counts against the peer's circuit
breaker, which then pauses the peer and lets one probe through after its cool-down, so
a dead link is not flooded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from edgefed.api.context import SiteContext
from edgefed.core.errors import EdgefedError
from edgefed.store.sync import OutboxEntry, SyncRepository, claim
from edgefed.sync.backoff import Backoff
from edgefed.sync.breaker import CLOSED, Breaker
from edgefed.sync.payloads import PayloadCache
from edgefed.sync.peers import signed_call
from edgefed.sync.settler import Settler

log = logging.getLogger("edgefed.sync.delivery")

PUSH_PATH = "/edge/v1/sync/push"
MAX_IDLE_SECONDS = 2.0
# With nothing in the outbox, a loop looks again after this long even if nobody wakes it.
CLEAR_IDLE_SECONDS = 30.0


@dataclass
class PeerWorker:
    ctx: SiteContext
    repo: SyncRepository
    target: str
    backoff: Backoff
    breaker: Breaker
    batch_size: int
    concurrency: int
    forwarded_targets: Callable[[str, str], Any]
    settler: Settler
    rng: random.Random = field(default_factory=random.Random)
    last_error: str | None = None
    # Rows being pushed by this peer's loops: (kind, key) -> rank.
    inflight: dict[tuple[str, str], int] = field(default_factory=dict)
    # Rows the router just queued (committed), handed over so that a live change is
    # pushed without first reading the outbox back; the outbox stays the authority.
    fresh: list[OutboxEntry] = field(default_factory=list)
    payloads: PayloadCache | None = None
    # True while this peer's outbox rows are known to be only those handed over fresh:
    # set when a look at the outbox found nothing to do; cleared by anything that may
    # leave rows there (a failure, a skipped or overflowing hand-over, an outside wake,
    # an idle timer). While it holds, a loop with nothing fresh sleeps without reading
    # the outbox: a live change to a hundred receivers is then a push per receiver and
    # no outbox queries, instead of two per push loop.
    known_clear: bool = False
    # Calls of ``wake`` so far: a look at the outbox that began before the last one
    # must not conclude that the outbox is clear.
    _woken: int = 0
    _wakes: list[asyncio.Event] = field(default_factory=list)
    _idle: list[asyncio.Event] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        for n in range(self.concurrency):
            event = asyncio.Event()
            self._wakes.append(event)
            self._tasks.append(
                asyncio.create_task(self._loop(event), name=f"sync-push-{self.target}-{n}")
            )

    def wake(self) -> None:
        """Every loop looks at the outbox again (new work there, or a retry)."""
        self.known_clear = False
        self._woken += 1
        for event in self._wakes:
            event.set()

    def offer(self, entries: list[OutboxEntry]) -> None:
        """Rows just queued for this peer (small batches only; the outbox has them all)."""
        if len(self.fresh) + len(entries) > self.batch_size:
            self.fresh.clear()
            self.wake()
            return
        self.fresh.extend(entries)
        if self._idle:  # one loop is enough for a hand-over; a busy one takes it next
            self._idle.pop().set()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self, wake: asyncio.Event) -> None:
        while True:
            # Cleared before the look, not after it: a wake that comes while this loop
            # looks (on PostgreSQL a look awaits the server) is then still set below.
            wake.clear()
            try:
                pause = await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sync push to %s failed unexpectedly", self.target)
                pause = 1.0
            # A hand-over while busy is taken at once, unless the breaker holds this peer
            # back: then the hand-over waits too (going round again would spin without
            # yielding, freezing the site's event loop for the whole cool-down).
            if pause > 0 and (not self.fresh or self.breaker.state != CLOSED):
                self._idle.append(wake)
                try:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel
                    async with asyncio.timeout(pause):
                        await wake.wait()
                except TimeoutError:
                    self.known_clear = False  # the safety net: look at the outbox
                finally:
                    with contextlib.suppress(ValueError):
                        self._idle.remove(wake)

    async def step(self) -> float:
        """One claim-and-push; how long to wait before the next (0 = go on at once)."""
        if not self.breaker.allow():
            return max(self.breaker.wait_time(), 0.05)
        woken = self._woken
        batch = await self.claim()
        if not batch:
            self.breaker.probing = False
            if self.known_clear:
                return CLEAR_IDLE_SECONDS
            due = await self.repo.next_due(self.target)
            if due is None and not self.inflight and not self.fresh and self._woken == woken:
                self.known_clear = True
                return CLEAR_IDLE_SECONDS
            now = self.ctx.clock()
            return MAX_IDLE_SECONDS if due is None else min(max(due - now, 0.01), MAX_IDLE_SECONDS)
        try:
            await self.push(batch)
        finally:
            for entry in batch:
                self.inflight.pop((entry.kind, entry.key), None)
        return 0.0

    async def claim(self) -> list[OutboxEntry]:
        """Take up to ``batch_size`` due rows that no other loop of this peer is pushing:
        the rows just handed over if there are any, else the outbox's (``claim_due``).
        The claims are the in-flight table, shared by this peer's loops."""
        if self.fresh:
            rows, self.fresh = self.fresh, []
            batch, left = claim(rows, claims=self.inflight, limit=self.batch_size)
            if left:
                self.known_clear = False  # left in the outbox for later
            return batch
        if self.known_clear:
            return []
        return await self.repo.claim_due(
            self.target, now=self.ctx.clock(), limit=self.batch_size, claims=self.inflight
        )

    async def push(self, batch: list[OutboxEntry]) -> None:
        try:
            items = await self._payload(batch)
            r = await signed_call(self.ctx, self.target, "POST", PUSH_PATH, {"items": items})
        except (httpx.HTTPError, EdgefedError) as exc:
            await self._fail_all(batch, f"{type(exc).__name__}: {exc}")
            return
        except Exception as exc:  # a bug must not leave the batch in flight forever
            log.exception("building the push to %s failed", self.target)
            await self._fail_all(batch, f"{type(exc).__name__}: {exc}")
            return
        results = _per_item(r) if r.status_code < 500 else None
        if results is None:
            await self._fail_all(batch, f"{self.target} answered {r.status_code}: {r.text[:200]}")
            return
        self.breaker.record_success()
        self.last_error = None
        done: list[OutboxEntry] = []
        failed: list[tuple[OutboxEntry, str, float]] = []
        parked: list[tuple[OutboxEntry, str]] = []
        now = self.ctx.clock()
        for entry in batch:
            result = results.get((entry.kind, entry.key))
            status = None if result is None else result.get("status")
            if status in ("applied", "stale", "duplicate"):
                done.append(entry)
            elif status == "conflict" and result is not None:
                parked.append((entry, f"conflict at {self.target}: {result.get('error')}"))
            else:
                error = "no answer for this item" if result is None else str(result.get("error"))
                failed.append((entry, error, now + self._delay(entry)))
        if failed:
            self.known_clear = False
        await self.settler.settle(self.target, done=done, failed=failed, now=now, conflicts=parked)

    def _delay(self, entry: OutboxEntry) -> float:
        return self.backoff.delay(entry.attempts + 1, rng=self.rng)

    async def _fail_all(self, batch: list[OutboxEntry], error: str) -> None:
        self.known_clear = False
        log.info("push of %d items to %s failed: %s", len(batch), self.target, error)
        self.breaker.record_failure()
        self.last_error = error
        now = self.ctx.clock()
        await self.settler.settle(
            self.target,
            done=[],
            failed=[(e, error, now + self._delay(e)) for e in batch],
            now=now,
        )

    async def _payload(self, batch: list[OutboxEntry]) -> list[dict[str, Any]]:
        cache = self.payloads if self.payloads is not None else PayloadCache()
        missing = [e for e in batch if e.op != "delete" and not cache.has(e)]
        if missing:
            rows = await self.repo.encoded_rows((e.kind, e.key) for e in missing)
            for entry in missing:
                cache.put(entry, rows[(entry.kind, entry.key)])
        items: list[dict[str, Any]] = []
        for entry in batch:
            row = None if entry.op == "delete" else cache.get(entry)
            item: dict[str, Any] = {
                "kind": entry.kind,
                "key": entry.key,
                "version": entry.version,
                "op": "delete" if row is None else "upsert",
            }
            if row is not None:
                item["row"] = row
                targets = self.forwarded_targets(entry.kind, entry.key)
                if targets:
                    item["targets"] = targets
            items.append(item)
        return items


def _per_item(r: httpx.Response) -> dict[tuple[str, str], dict[str, Any]] | None:
    """A push answer's results by (kind, key), or None if it has none (the whole push
    was refused, or the answer is malformed)."""
    try:
        doc = r.json()
        return {(x["kind"], x["key"]): x for x in doc["results"] if isinstance(x, dict)}
    except (ValueError, KeyError, TypeError):
        return None


@dataclass
class Delivery:
    """The workers of every receiver this site pushes to."""

    ctx: SiteContext
    repo: SyncRepository
    forwarded_targets: Callable[[str, str], Any]
    workers: dict[str, PeerWorker] = field(default_factory=dict)
    payloads: PayloadCache = field(default_factory=PayloadCache)
    settler: Settler = field(init=False)

    def __post_init__(self) -> None:
        self.settler = Settler(self.repo)

    def worker(self, target: str) -> PeerWorker:
        existing = self.workers.get(target)
        if existing is not None:
            return existing
        s = self.ctx.settings
        worker = PeerWorker(
            ctx=self.ctx,
            repo=self.repo,
            target=target,
            backoff=Backoff(tuple(s.sync_backoff_seconds)),
            breaker=Breaker(
                threshold=s.sync_breaker_threshold, cooldown=s.sync_breaker_cooldown_seconds
            ),
            batch_size=s.sync_batch_size,
            concurrency=max(1, s.sync_peer_concurrency),
            forwarded_targets=self.forwarded_targets,
            settler=self.settler,
            payloads=self.payloads,
        )
        self.workers[target] = worker
        worker.start()
        return worker

    async def forget(self, target: str) -> None:
        """Stop pushing to ``target`` (it unregistered)."""
        worker = self.workers.pop(target, None)
        if worker is not None:
            await worker.stop()

    def breaker_states(self) -> dict[str, str]:
        """Each peer's breaker: closed, open or half-open."""
        return {t: w.breaker.state for t, w in self.workers.items()}

    def inflight_counts(self) -> dict[str, int]:
        """Rows being pushed, per peer (they stay pending in the outbox)."""
        return {t: len(w.inflight) for t, w in self.workers.items()}

    async def wake_all(self) -> None:
        for target in await self.repo.targets_with_work():
            self.worker(target).wake()

    async def stop(self) -> None:
        for worker in self.workers.values():
            await worker.stop()
        self.workers.clear()
        await self.settler.drain()
