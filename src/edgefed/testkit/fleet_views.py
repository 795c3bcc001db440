"""A site's view of a fleet made by hand, for tests of what reads it (peer watch,
scope calls, region access) without sites, signatures or gossip.

The entries are not signed and their keys are thrown away: the view accepts them as
given, which is what the code under test reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from edgefed.api.context import Keyring
from edgefed.api.fleetview import FleetView
from edgefed.core.ed25519 import Ed25519PrivateKey
from edgefed.core.fleet import SiteEntry
from edgefed.core.tokens import public_key_b64


def site_entry(name: str, **fields: Any) -> SiteEntry:
    """``name``'s entry with a fresh key, reached at ``http://<name>.test`` unless
    ``fields`` say otherwise."""
    fields.setdefault("endpoint", f"http://{name.lower()}.test")
    public_key = public_key_b64(Ed25519PrivateKey.generate().public_key())
    return SiteEntry(name=name, public_key=public_key, **fields)


def fleet_view(self_name: str, entries: Iterable[SiteEntry | str]) -> FleetView:
    """``self_name``'s view holding ``entries`` (a bare name: ``site_entry(name)``)."""
    view = FleetView(self_name=self_name, keyring=Keyring(), peers={})
    view.apply(e if isinstance(e, SiteEntry) else site_entry(e) for e in entries)
    return view
