"""The site context: everything a request handler may need, built once by the app.

Handlers reach it through ``site_context(request)``; nothing is global. What one room
offers another is a typed field holding a Protocol of ``api/`` (``fleet``, ``authority``,
``revoker``, ``sync_status``, ``host_commands``, ``guest_metrics``, ``images``,
``volumes``), filled by the service that implements it; a service's private state sits
in ``slots``, found by its class (api/slots.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx
from starlette.requests import HTTPConnection

from edgefed.api.authority import Authority
from edgefed.api.revocation import RevocationList, Revoker
from edgefed.api.service import CatalogEntry
from edgefed.api.slots import Slots
from edgefed.api.syncstatus import SyncStatus
from edgefed.api.tls import PinStore
from edgefed.core.ed25519 import Ed25519PublicKey
from edgefed.core.settings import SiteSettings
from edgefed.core.sitesig import NonceCache
from edgefed.core.tokens import TokenSigner
from edgefed.store.engine import Store

if TYPE_CHECKING:
    from edgefed.api.fleetview import FleetView
    from edgefed.api.guestmetrics import GuestMetrics
    from edgefed.api.hostcommands import HostCommandQueue
    from edgefed.api.images import ImageCatalog
    from edgefed.api.metrics import RequestMetrics
    from edgefed.api.volumes import VolumeCatalog


@dataclass
class Keyring:
    """Public keys of the sites whose tokens this site accepts (the fleet, pinned)."""

    keys: dict[str, Ed25519PublicKey] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)
    # The same keys by endpoint origin, for site-to-site TLS (api/tls.py).
    tls_pins: PinStore = field(default_factory=PinStore)

    def lookup(self, site: str) -> Ed25519PublicKey | None:
        if site in self.revoked:
            return None
        return self.keys.get(site)


@dataclass
class SiteContext:
    settings: SiteSettings
    store: Store
    signer: TokenSigner
    keyring: Keyring
    revocations: RevocationList
    http: httpx.AsyncClient
    clock: Callable[[], float] = time.time
    # The transport under ``http``, for the scope router's one-hop forwarding, which
    # needs none of the client's layers (auth, redirects, cookies, default headers).
    peer_transport: httpx.AsyncBaseTransport | None = None
    # The services this site serves, as they appear in the Keystone catalog.
    catalog_entries: tuple[CatalogEntry, ...] = ()
    # Other fleet sites this site knows: name -> public URL (filled by the fleet registry).
    peers: dict[str, str] = field(default_factory=dict)
    # The fleet view (registry, RTTs); set by the sites service (edgefed.api.fleetview).
    fleet: FleetView | None = None
    # What tokens of other sites may do here (the identity service; None before it starts).
    authority: Authority | None = None
    # Revocations made here, stored and spread (the identity service; None before it starts).
    revoker: Revoker | None = None
    # The sync engine's figures for fleet operations (the sync service; None without it).
    sync_status: SyncStatus | None = None
    # The command channel to the host agents (the inventory service; None before it starts).
    host_commands: HostCommandQueue | None = None
    # Each guest's power, size and counters for /metrics (compute; None without it).
    guest_metrics: GuestMetrics | None = None
    # Images the caller may see, and images made of files (the image service; None
    # before it starts).
    images: ImageCatalog | None = None
    # Volumes the caller may see, and their attachments to this site's servers (the
    # volume service; None before it starts).
    volumes: VolumeCatalog | None = None
    # Counters and latencies of the requests this site served (the app's middleware).
    request_metrics: RequestMetrics | None = None
    # Nonces of signed site-to-site requests seen lately (replay protection).
    nonces: NonceCache = field(default_factory=NonceCache)
    # Each service's private state (repositories, drivers, caches), keyed by its class.
    slots: Slots = field(default_factory=Slots)

    @property
    def name(self) -> str:
        return self.settings.name

    def fleet_sites(self) -> dict[str, str]:
        """Every site of the fleet this site knows, itself included: name -> public URL."""
        return {self.name: self.public_url, **self.peers}

    @property
    def public_url(self) -> str:
        url = self.settings.public_url or f"http://{self.settings.host}:{self.settings.port}"
        return url.rstrip("/")


def site_context(conn: HTTPConnection) -> SiteContext:
    ctx: SiteContext = conn.app.state.ctx
    return ctx
