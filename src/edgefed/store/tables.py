"""Imports every table module so that ``metadata`` knows all tables (for migrations)."""

from __future__ import annotations

from edgefed.store import (  # noqa: F401
    alarms,
    commands,
    compute,
    fleet,
    identity,
    image,
    inventory,
    mappings,
    network,
    revocations,
    sync,
    volume,
)
from edgefed.store.schema import metadata

__all__ = ["metadata"]
