"""The fleet registry's entries and the rule that merges them.

Every site holds a copy of the registry, so routing and token checks work during
partitions. Copies converge by anti-entropy (gossip): an entry with a higher
``version`` replaces a lower one; at equal versions a revocation wins, so a revocation
is never lost to a concurrent update. A site's public key is pinned at enrollment: an
entry that arrives with another key for a known name is refused, whatever its version.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from edgefed.core.errors import ValidationFailed
from edgefed.core.settings import SITE_NAME_RE, Location


class SiteStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class SiteEntry:
    name: str
    endpoint: str
    public_key: str
    version: int = 1
    status: SiteStatus = SiteStatus.ACTIVE
    location: Location = field(default_factory=Location)
    labels: Mapping[str, str] = field(default_factory=dict)
    capabilities: tuple[str, ...] = ()
    updated_at: float = 0.0

    @property
    def active(self) -> bool:
        return self.status is SiteStatus.ACTIVE

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "endpoint": self.endpoint,
            "public_key": self.public_key,
            "version": self.version,
            "status": self.status.value,
            "location": dataclasses.asdict(self.location),
            "labels": dict(self.labels),
            "capabilities": list(self.capabilities),
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_json(cls, raw: Any) -> SiteEntry:
        if not isinstance(raw, Mapping):
            raise ValidationFailed("a site entry must be an object", field="site")
        try:
            name = str(raw["name"])
            endpoint = str(raw["endpoint"])
            public_key = str(raw["public_key"])
        except KeyError as exc:
            raise ValidationFailed(f"site entry lacks {exc.args[0]!r}", field=exc.args[0]) from exc
        if not SITE_NAME_RE.match(name):
            raise ValidationFailed(f"invalid site name {name!r}", field="name")
        if not endpoint.startswith(("http://", "https://")):
            raise ValidationFailed(f"invalid endpoint {endpoint!r}", field="endpoint")
        loc = raw.get("location") or {}
        try:
            location = Location(
                lat=float(loc.get("lat", 0.0)),
                lon=float(loc.get("lon", 0.0)),
                country=str(loc.get("country", "")),
                region=str(loc.get("region", "")),
            )
            version = int(raw.get("version", 1))
            status = SiteStatus(raw.get("status", "active"))
            updated_at = float(raw.get("updated_at", 0.0))
        except (TypeError, ValueError, AttributeError) as exc:
            raise ValidationFailed(f"invalid site entry for {name}: {exc}", field="site") from exc
        labels = raw.get("labels") or {}
        caps = raw.get("capabilities") or []
        if not isinstance(labels, Mapping) or not isinstance(caps, list):
            raise ValidationFailed("labels must be an object and capabilities a list")
        return cls(
            name=name,
            endpoint=endpoint.rstrip("/"),
            public_key=public_key,
            version=version,
            status=status,
            location=location,
            labels={str(k): str(v) for k, v in labels.items()},
            capabilities=tuple(str(c) for c in caps),
            updated_at=updated_at,
        )


EntryState = tuple[int, bool]  # an entry's version, and whether it is revoked


def state_of(entry: SiteEntry) -> EntryState:
    return entry.version, not entry.active


def supersedes(state: EntryState, over: EntryState | None) -> bool:
    """Whether an entry at ``state`` replaces one at ``over`` (keys aside): a higher
    version, or the same version revoked where ``over`` is not."""
    if over is None:
        return True
    (version, revoked), (old_version, old_revoked) = state, over
    return version > old_version or (version == old_version and revoked and not old_revoked)


def should_replace(local: SiteEntry | None, incoming: SiteEntry) -> bool:
    """Whether ``incoming`` replaces ``local`` in the registry (see module docstring)."""
    if local is None:
        return True
    if incoming.public_key != local.public_key:
        return False
    return supersedes(state_of(incoming), state_of(local))
