"""The sync engine's storage: what changed, what to deliver where, and what arrived.

A source captures every change of a synchronisable table in a change log (database
triggers, ``triggers``), turns the changes of marked resources into outbox rows per
receiver (``outbox``) and reads the rows to push (``rows``, ``codec``). A receiver
applies pushed rows only where they are the source's (``receiver``, ``receive_item``,
``receive_bulk``), records clashes (``conflicts``) and the blobs still to fetch
(``fetches``). Layers, top down: ``repository`` and ``receiver`` above the
single-concept repositories, above ``rows``/``codec``, above ``kinds`` and ``tables``.
The engine above the store (``edgefed.sync``) imports what it needs from here.
"""

from edgefed.store.sync.changes import Change, ChangeLog
from edgefed.store.sync.conflicts import ConflictRepository
from edgefed.store.sync.fetches import BlobFetches, Fetch
from edgefed.store.sync.kinds import CHILDREN, KINDS, Kind, Ref, delivery_rank, valid_sha256
from edgefed.store.sync.marks import Mark, MarkRepository
from edgefed.store.sync.outbox import OutboxEntry, Outcome, PeerBacklog, SyncOutbox, claim
from edgefed.store.sync.receive_item import Revocation
from edgefed.store.sync.receiver import PushOutcome, SyncReceiver
from edgefed.store.sync.registrations import Registrations
from edgefed.store.sync.repository import SyncRepository
from edgefed.store.sync.rows import SyncRows
from edgefed.store.sync.tables import (
    ACCEPTED,
    APPROVED,
    CONFLICT,
    DONE,
    FAILING,
    INFLIGHT,
    PENDING,
    REQUESTED,
)
from edgefed.store.sync.triggers import capture_ddl, drop_capture_ddl

__all__ = [
    "ACCEPTED",
    "APPROVED",
    "CHILDREN",
    "CONFLICT",
    "DONE",
    "FAILING",
    "INFLIGHT",
    "KINDS",
    "PENDING",
    "REQUESTED",
    "BlobFetches",
    "Change",
    "ChangeLog",
    "ConflictRepository",
    "Fetch",
    "Kind",
    "Mark",
    "MarkRepository",
    "OutboxEntry",
    "Outcome",
    "PeerBacklog",
    "PushOutcome",
    "Ref",
    "Registrations",
    "Revocation",
    "SyncOutbox",
    "SyncReceiver",
    "SyncRepository",
    "SyncRows",
    "capture_ddl",
    "claim",
    "delivery_rank",
    "drop_capture_ddl",
    "valid_sha256",
]
