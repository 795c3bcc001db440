"""The receiver side of a push: a source's items applied in one transaction.

What each item may change is receive_item.py's business (only what is the source's);
this module runs a whole push: one transaction, committed before the answer, with runs
of plain upserts handed to receive_bulk.py. A malformed item is a 400 for that item
and leaves nothing behind; should the database still refuse the batch, every item is
retried alone so that one bad row cannot hold back the others.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import StatementError

from edgefed.store import identity
from edgefed.store.engine import AsyncConnection, Store
from edgefed.store.sync.receive_bulk import apply_bulk
from edgefed.store.sync.receive_checks import CONFLICT, bulk_eligible, rejection
from edgefed.store.sync.receive_item import ItemRun, Revocation


@dataclass
class PushOutcome:
    results: list[dict[str, Any]]
    revocations: list[Revocation] = field(default_factory=list)

    @property
    def conflicts(self) -> int:
        return sum(1 for r in self.results if r["status"] == CONFLICT)


class SyncReceiver:
    def __init__(
        self,
        store: Store,
        *,
        max_blob_bytes: int,
        normalise_targets: Callable[[str], str] = lambda text: text,
    ):
        self.store = store
        self.max_blob_bytes = max_blob_bytes
        # A pushed target set (to pass on down a hierarchy): normalised, or an error.
        self.normalise_targets = normalise_targets

    async def apply_batch(
        self,
        *,
        source: str,
        items: Sequence[Mapping[str, Any]],
        has_blob: Callable[[str], bool],
        now: float,
    ) -> PushOutcome:
        """Apply received items in order, in one transaction (committed before returning).

        Each result says ``applied``, ``stale`` (older than the version held),
        ``duplicate`` (this version was applied already), ``conflict`` (409: a row held
        here is not the source's; recorded) or ``rejected`` with a code and an error.
        Should the database still refuse the batch (a constraint the checks did not
        foresee), every item is retried in its own transaction, so one bad row cannot
        hold back the others.
        """
        revocations: list[Revocation] = []

        def run_on(conn: AsyncConnection, collected: list[Revocation]) -> ItemRun:
            return ItemRun(
                conn=conn, source=source, has_blob=has_blob, now=now, revocations=collected,
                max_blob_bytes=self.max_blob_bytes, normalise_targets=self.normalise_targets,
            )  # fmt: skip

        try:
            async with self.store.write() as conn:
                results = await apply_all(run_on(conn, revocations), items)
        except StatementError:
            results, revocations = [], []
            for item in items:
                mine: list[Revocation] = []
                try:
                    async with self.store.write() as conn:
                        results.append(await run_on(conn, mine).one(item))
                except StatementError as exc:
                    results.append(rejection(item, 400, f"the database refused it: {exc.orig}"))
                else:
                    revocations += mine
        identity.mark_identity_changed(self.store)
        return PushOutcome(results, revocations)


async def apply_all(run: ItemRun, items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every item in order: runs of plain upserts of one kind together, the rest one by one."""
    results: list[dict[str, Any]] = []
    batch: list[Mapping[str, Any]] = []
    for item in items:
        if bulk_eligible(item) and (not batch or batch[0]["kind"] == item["kind"]):
            batch.append(item)
            continue
        if batch:
            results += await apply_bulk(run, batch)
            batch = []
        if bulk_eligible(item):
            batch.append(item)
        else:
            results.append(await run.one(item))
    if batch:
        results += await apply_bulk(run, batch)
    return results
