"""``SyncRepository``: every sync repository of a source over one store, for the engine.

Each concept has its own repository (the change log, the outbox, marks, registrations,
blob fetches, the rows themselves), usable and tested alone. The engine uses all of
them, so it holds this union; its parts take only the one they need (the delivery
workers an outbox, the blob fetcher its fetches).
"""

from __future__ import annotations

from edgefed.store.sync.changes import ChangeLog
from edgefed.store.sync.fetches import BlobFetches
from edgefed.store.sync.marks import MarkRepository
from edgefed.store.sync.outbox import SyncOutbox
from edgefed.store.sync.registrations import Registrations
from edgefed.store.sync.rows import SyncRows


class SyncRepository(ChangeLog, SyncOutbox, MarkRepository, Registrations, BlobFetches, SyncRows):
    """The sync tables of one store (each base class takes the store alone)."""
