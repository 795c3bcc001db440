"""The volume service's store: volume types, volumes, snapshots, their metadata,
attachments and quotas (Cinder's data model, kept small).

The volume API reads and writes through these repositories only; they take and return
the records of ``tables.py`` and raise ``StateConflict`` (a change the record's status
does not allow), ``OverLimit`` (a quota) or ``TypeInUse``, which the service words.
"""

from __future__ import annotations

from edgefed.store.volume.attachments import Attachments
from edgefed.store.volume.listing import MarkerNotFound, Page
from edgefed.store.volume.quotas import Demand, OverLimit, VolumeQuotas
from edgefed.store.volume.snapshots import Snapshots
from edgefed.store.volume.tables import (
    DEFAULT_TYPE_NAME,
    AttachmentRecord,
    NewSnapshot,
    NewVolume,
    NewVolumeType,
    SnapshotRecord,
    VolumeRecord,
    VolumeTypeRecord,
)
from edgefed.store.volume.types import TypeInUse, VolumeTypes
from edgefed.store.volume.volumes import StateConflict, Volumes

__all__ = [
    "DEFAULT_TYPE_NAME",
    "AttachmentRecord",
    "Attachments",
    "Demand",
    "MarkerNotFound",
    "NewSnapshot",
    "NewVolume",
    "NewVolumeType",
    "OverLimit",
    "Page",
    "SnapshotRecord",
    "Snapshots",
    "StateConflict",
    "TypeInUse",
    "VolumeQuotas",
    "VolumeRecord",
    "VolumeTypeRecord",
    "VolumeTypes",
    "Volumes",
]
