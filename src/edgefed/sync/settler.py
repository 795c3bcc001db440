"""``Settler``: push outcomes written to the outbox, coalesced into few transactions."""

from __future__ import annotations

import asyncio
import contextlib

from edgefed.store.sync import OutboxEntry, Outcome, SyncOutbox


class Settler:
    """Records push outcomes, coalescing those that arrive together into one transaction.

    A change pushed to a hundred receivers comes back as a hundred answers within a few
    milliseconds; written one by one, each would wait its turn for SQLite's single writer
    and its own fsync. While one transaction is being written, the outcomes that arrive
    queue up, and the next transaction takes them all. A caller returns once its outcome
    is committed (or with the error that prevented it).
    """

    def __init__(self, repo: SyncOutbox):
        self.repo = repo
        self._queue: list[tuple[Outcome, asyncio.Future[None]]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def settle(
        self,
        target: str,
        *,
        done: list[OutboxEntry],
        failed: list[tuple[OutboxEntry, str, float]],
        now: float,
        conflicts: list[tuple[OutboxEntry, str]] | None = None,
    ) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((Outcome(target, done, failed, now, conflicts or []), future))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush(), name="sync-settle")
        await future

    async def _flush(self) -> None:
        while self._queue:  # bounded: each round takes everything queued so far
            batch, self._queue = self._queue, []
            try:
                await self.repo.settle_many([outcome for outcome, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            else:
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)

    async def drain(self) -> None:
        """Wait for what is being written (at stop)."""
        if self._flushing is not None:
            with contextlib.suppress(Exception):
                await self._flushing
