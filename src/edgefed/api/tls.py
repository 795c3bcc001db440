"""Site-to-site TLS: every peer pinned to the key the fleet registry holds for it.

There is no CA between sites. Each site serves a self-signed certificate for its
Ed25519 site key (core/certs.py), and a caller accepts an https peer only when the key
in that certificate is exactly the one pinned for the peer's origin
(``https://host:port``). TLS 1.3 proves in the handshake that the peer holds the
private key of its certificate, so a pinned key is an authenticated peer; the CA chain
and the host name, which mean nothing here, are not checked.

``PinStore`` maps origins to keys. The fleet view feeds it (each active registry
entry: its endpoint → its key; ``FleetView.apply``), and so does a join (the issuer's
URL → the key pinned in the enrollment token), before any request goes out. The
inter-site transport (api/peer_transport.py) asks it about every https request and
every new connection:

- no pin for the origin: refused before connecting (``UnpinnedPeer``);
- a certificate for another key, or not an Ed25519 one: the connection is closed before
  a byte of the request is written (``PinMismatch``).

Both are ``httpx.ConnectError``\\ s, the transport error the router, gossip, sync and the
health monitor already handle as "that site did not answer". A pin that changes (a key
rotation, a revocation, a site moving) closes the kept-alive connections to that origin.

The server side, ``server_context``: one port, two certificates. A caller that sends
the reserved server name ``site.edgefed.invalid`` (every site does) gets the site-key
certificate; any other client gets the operator's certificate (``tls_cert_file``), or
the site-key certificate when there is none.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from edgefed.core.certs import (
    SITE_SERVER_NAME,
    CertificateError,
    ed25519_key_of_certificate,
    ensure_site_certificate,
)
from edgefed.core.settings import SiteSettings
from edgefed.core.tokens import b64url, b64url_decode, load_or_create_signing_key

__all__ = [
    "SITE_SERVER_NAME",
    "PinMismatch",
    "PinStore",
    "UnpinnedPeer",
    "server_context",
    "site_client_context",
]

PinKey = tuple[str, int]  # host, port of an https origin


class UnpinnedPeer(httpx.ConnectError):
    """An https address that is no fleet site's registered endpoint."""


class PinMismatch(httpx.ConnectError):
    """The peer's certificate is not for the key pinned for its origin."""


def _show(key: PinKey) -> str:
    host, port = key
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def _pin_key(url: str) -> PinKey | None:
    """The origin of an https URL; None for anything else (plain http is not pinned)."""
    try:
        parts = urlsplit(url)
        port = parts.port or 443
    except ValueError:
        return None
    if parts.scheme.lower() != "https" or not parts.hostname:
        return None
    return parts.hostname, port


class PinStore:
    """Origin (``https://host:port``) → the raw Ed25519 key its server must present."""

    def __init__(self) -> None:
        self._pins: dict[PinKey, bytes] = {}
        self._origin_of: dict[str, PinKey] = {}  # site name -> the origin pinned for it
        # Told the origin whose pin changed or went (the transport drops its connections).
        self.on_change: list[Callable[[str, int], None]] = []

    def note(self, site: str, endpoint: str, public_key: str, *, active: bool) -> None:
        """A registry entry (or an enrollment token's issuer): pin its endpoint to its key
        when active, unpin it when revoked. ``public_key`` is urlsafe base64; one that
        does not decode to 32 bytes pins nothing (its peer is then refused)."""
        try:
            raw = b64url_decode(public_key)
        except ValueError:
            raw = b""
        key = _pin_key(endpoint)
        previous = self._origin_of.pop(site, None)
        if previous is not None and previous != key:
            self._unpin(previous, raw)
        if key is None or len(raw) != 32:
            return
        if active:
            self._origin_of[site] = key
            if self._pins.get(key) != raw:
                changed = key in self._pins
                self._pins[key] = raw
                if changed:
                    self._changed(key)
        else:
            self._unpin(key, raw)

    def _unpin(self, key: PinKey, raw: bytes) -> None:
        # Only this site's own pin: the origin may belong to another site by now.
        if self._pins.get(key) == raw:
            del self._pins[key]
            self._changed(key)

    def _changed(self, key: PinKey) -> None:
        for listener in self.on_change:
            listener(*key)

    def get(self, host: str, port: int) -> bytes | None:
        return self._pins.get((host, port))

    def require(self, host: str, port: int) -> bytes:
        """The key pinned for this origin; ``UnpinnedPeer`` naming it when none is."""
        raw = self._pins.get((host, port))
        if raw is None:
            raise UnpinnedPeer(
                f"refusing {_show((host, port))}: no site key is pinned for it (it is not the "
                "endpoint of an active site in the fleet registry)"
            )
        return raw

    def check(self, host: str, port: int, transport: asyncio.BaseTransport) -> None:
        """Accept a new TLS connection only if its peer's certificate holds the pinned key."""
        expected = self.require(host, port)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            raise PinMismatch(f"TLS pin mismatch for {_show((host, port))}: no certificate")
        try:
            presented = ed25519_key_of_certificate(der)
        except CertificateError as exc:
            raise PinMismatch(f"TLS pin mismatch for {_show((host, port))}: {exc}") from None
        if presented != expected:
            raise PinMismatch(
                f"TLS pin mismatch for {_show((host, port))}: it presented the key "
                f"{b64url(presented)}, the fleet registry pins {b64url(expected)}"
            )

    def __len__(self) -> int:
        return len(self._pins)


def site_client_context() -> ssl.SSLContext:
    """The context of every site-to-site connection: TLS 1.3 only; the peer is checked
    against its pin after the handshake (``PinStore.check``), not against a CA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # no CA to verify against: the pin is the check
    context.set_alpn_protocols(["http/1.1"])
    return context


def site_key_files(settings: SiteSettings) -> tuple[Path, Path]:
    """The site key (made if missing) and its certificate (made or renewed if needed)."""
    keys = settings.data_dir / "keys"
    key_file = keys / "signing.pem"
    key = load_or_create_signing_key(key_file)
    cert_file = ensure_site_certificate(keys / "signing-cert.pem", key, name=settings.name)
    return cert_file, key_file


def server_context(settings: SiteSettings) -> ssl.SSLContext:
    """The server's context: the site-key certificate for sites, the operator's (if any)
    for everyone else."""
    cert_file, key_file = site_key_files(settings)
    site = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    site.minimum_version = ssl.TLSVersion.TLSv1_3
    site.set_alpn_protocols(["http/1.1"])
    site.load_cert_chain(cert_file, key_file)
    if not settings.tls_cert_file:
        return site
    clients = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    clients.minimum_version = ssl.TLSVersion.TLSv1_2
    clients.set_alpn_protocols(["http/1.1"])
    clients.load_cert_chain(settings.tls_cert_file, settings.tls_key_file or None)

    def pick(ssl_object: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
        if server_name == SITE_SERVER_NAME:
            ssl_object.context = site

    clients.sni_callback = pick
    return clients
