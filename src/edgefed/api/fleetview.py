"""This site's in-memory view of the fleet: registry entries, keys, measured RTTs.

The registry in the store is the durable copy; this view is what request handling
reads (the scope router resolves ``*``, ``@key=value`` and ``around()`` against it,
the authenticator looks keys up in the keyring it maintains). Only the sites service
writes to it, through ``apply()``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from edgefed.api.context import Keyring
from edgefed.core.fleet import SiteEntry
from edgefed.core.tokens import public_key_from_b64


class FleetView:
    def __init__(self, *, self_name: str, keyring: Keyring, peers: dict[str, str]):
        self.self_name = self_name
        self.keyring = keyring
        self.peers = peers
        self.entries: dict[str, SiteEntry] = {}
        # rtt[a][b]: RTT in ms from a to b as measured by a (gossiped).
        self.rtt: dict[str, dict[str, float]] = {}
        # Last time a peer answered (monotonic seconds), for health.
        self.last_seen: dict[str, float] = {}
        # Peers the health monitor finds offline, with the reason (the router fails fast).
        self.down: dict[str, str] = {}

    def apply(self, entries: Iterable[SiteEntry]) -> None:
        for entry in entries:
            self.entries[entry.name] = entry
            # Site-to-site TLS accepts this endpoint only with this key (api/tls.py).
            self.keyring.tls_pins.note(
                entry.name, entry.endpoint, entry.public_key, active=entry.active
            )
            if entry.name == self.self_name:
                continue
            if entry.active:
                self.keyring.keys[entry.name] = public_key_from_b64(entry.public_key)
                self.keyring.revoked.discard(entry.name)
                self.peers[entry.name] = entry.endpoint
            else:
                self.keyring.keys.pop(entry.name, None)
                self.keyring.revoked.add(entry.name)
                self.peers.pop(entry.name, None)

    # The fleet protocol the scope language resolves against.
    def site_names(self) -> list[str]:
        return sorted(n for n, e in self.entries.items() if e.active) or [self.self_name]

    def labels_of(self, site: str) -> Mapping[str, str]:
        entry = self.entries.get(site)
        if entry is None:
            return {}
        labels = dict(entry.labels)
        if entry.location.region:
            labels.setdefault("region", entry.location.region)
        if entry.location.country:
            labels.setdefault("country", entry.location.country)
        return labels

    def rtt_ms(self, source: str, target: str) -> float | None:
        if source == target:
            return 0.0
        return self.rtt.get(source, {}).get(target)

    def active(self, name: str) -> bool:
        entry = self.entries.get(name)
        return entry is not None and entry.active
