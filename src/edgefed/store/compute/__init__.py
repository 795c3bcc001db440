"""Tables and repositories of the compute service: flavors, servers (and their
volumes), keypairs, quotas.

The compute service never sees SQL: it calls the repositories (one module each), which
return frozen records (records.py). Rows that arrived from a sync source carry its name
in ``origin``; the repositories refuse to change or delete them locally (``Locked``).
The tables are in ``tables`` (the sync store names them as synchronisable kinds).
"""

from edgefed.store.compute.drains import DrainRecord, Drains
from edgefed.store.compute.flavors import FlavorRepository
from edgefed.store.compute.keypairs import KeypairRepository
from edgefed.store.compute.quotas import QuotaRepository
from edgefed.store.compute.records import (
    FlavorRecord,
    HostUsage,
    InstanceActionRecord,
    KeypairRecord,
    ServerRecord,
)
from edgefed.store.compute.releases import PendingRelease, PendingReleases
from edgefed.store.compute.relocations import RelocationRecord, Relocations
from edgefed.store.compute.servers import ServerRepository
from edgefed.store.compute.volumes import (
    DEVICE_NAMES,
    DeviceInUse,
    NoFreeDevice,
    ServerVolumes,
    VolumeMapping,
    mappings_of,
)

__all__ = [
    "DEVICE_NAMES",
    "DeviceInUse",
    "DrainRecord",
    "Drains",
    "FlavorRecord",
    "FlavorRepository",
    "HostUsage",
    "InstanceActionRecord",
    "KeypairRecord",
    "KeypairRepository",
    "NoFreeDevice",
    "PendingRelease",
    "PendingReleases",
    "QuotaRepository",
    "RelocationRecord",
    "Relocations",
    "ServerRecord",
    "ServerRepository",
    "ServerVolumes",
    "VolumeMapping",
    "mappings_of",
]
