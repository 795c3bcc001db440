"""``PayloadCache``: rows read and encoded once per version for every receiver."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from edgefed.store.sync import OutboxEntry

PAYLOAD_CACHE_ROWS = 20_000


class PayloadCache:
    """Encoded rows by (kind, key, version), shared by every peer's workers.

    One change pushed to a hundred receivers is read and encoded once, not a hundred
    times. A version's content is read at or after that version, never before, so a
    cached row is never older than the version it is sent as (a newer change gets its
    own version and its own read).
    """

    def __init__(self, capacity: int = PAYLOAD_CACHE_ROWS):
        self.capacity = capacity
        self.rows: OrderedDict[tuple[str, str, int], dict[str, Any] | None] = OrderedDict()

    def has(self, entry: OutboxEntry) -> bool:
        return (entry.kind, entry.key, entry.version) in self.rows

    def get(self, entry: OutboxEntry) -> dict[str, Any] | None:
        return self.rows.get((entry.kind, entry.key, entry.version))

    def put(self, entry: OutboxEntry, row: dict[str, Any] | None) -> None:
        self.rows[(entry.kind, entry.key, entry.version)] = row
        while len(self.rows) > self.capacity:
            self.rows.popitem(last=False)
