"""Site-to-site TLS (api/tls.py): pins, the inter-site transport, the server's two faces.

Real TLS on loopback, on both event loops a site may use (the pin check reads the peer
certificate off the connection's transport, which differs between asyncio and uvloop).
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgefed.api.peer_transport import PeerTransport
from edgefed.api.tls import (
    SITE_SERVER_NAME,
    PinMismatch,
    PinStore,
    UnpinnedPeer,
    server_context,
    site_client_context,
)
from edgefed.core.certs import ed25519_key_of_certificate, site_certificate_pem
from edgefed.core.ed25519 import Ed25519PrivateKey
from edgefed.core.localca import ensure_local_ca, issue_server_certificate
from edgefed.core.settings import SiteSettings
from edgefed.core.tokens import b64url


def key_context(
    directory: Path, key: Ed25519PrivateKey, *, maximum: ssl.TLSVersion | None = None
) -> ssl.SSLContext:
    """A server context presenting a site-key certificate for ``key``."""
    cert, private = directory / f"{b64url(key.public_key().raw)[:8]}.pem", directory / "key.pem"
    cert.write_bytes(site_certificate_pem(key, name="test"))
    private.write_bytes(key.to_pem())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if maximum is not None:
        context.maximum_version = maximum
    context.load_cert_chain(cert, private)
    return context


class TlsServer:
    """HTTP/1.1 keep-alive over TLS; answers every request with the server name it saw."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.connections = 0
        self.requests = 0
        self.ended = asyncio.Condition()  # notified when a connection ends
        self.done = 0
        self.server_names: list[str | None] = []
        self.versions: list[str | None] = []
        self.server: asyncio.Server | None = None
        context.sni_callback = self._sni

    def _sni(self, _obj: Any, name: str | None, _ctx: ssl.SSLContext) -> None:
        self.server_names.append(name)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        ssl_object = writer.get_extra_info("ssl_object")
        self.versions.append(ssl_object.version() if ssl_object else None)
        try:
            for _ in range(100):
                await reader.readuntil(b"\r\n\r\n")
                self.requests += 1
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()
            self.done += 1
            async with self.ended:
                self.ended.notify_all()

    async def wait_ended(self, count: int) -> None:
        """Until ``count`` connections have ended here (their requests all counted)."""
        async with asyncio.timeout(5), self.ended:
            await self.ended.wait_for(lambda: self.done >= count)

    async def __aenter__(self) -> TlsServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.context)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"https://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"


def pins_for(url: str, key: Ed25519PrivateKey, site: str = "Denver") -> PinStore:
    pins = PinStore()
    pins.note(site, url, b64url(key.public_key().raw), active=True)
    return pins


def test_a_pinned_peer_is_reached_over_tls_1_3_with_the_site_server_name(
    run: Any, tmp_path: Path
) -> None:
    key = Ed25519PrivateKey.generate()

    async def main() -> None:
        async with TlsServer(key_context(tmp_path, key)) as server:
            transport = PeerTransport(limits=httpx.Limits(), pins=pins_for(server.url, key))
            async with httpx.AsyncClient(transport=transport) as client:
                for _ in range(3):
                    r = await client.get(server.url + "/x")
                    assert r.status_code == 200 and r.text == "ok"
                r = await transport.forward(server.url, "GET", "/y", [], None, 5.0)
                assert await r.aread() == b"ok"
                await r.aclose()
            assert server.connections == 1  # kept alive: one handshake for every request
            assert server.server_names == [SITE_SERVER_NAME]
            assert server.versions == ["TLSv1.3"]

    run(main())


def test_a_peer_presenting_another_key_is_refused_before_the_request(
    run: Any, tmp_path: Path
) -> None:
    pinned, impostor = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()

    async def main() -> None:
        async with TlsServer(key_context(tmp_path, impostor)) as server:
            transport = PeerTransport(limits=httpx.Limits(), pins=pins_for(server.url, pinned))
            async with httpx.AsyncClient(transport=transport) as client:
                with pytest.raises(PinMismatch) as caught:
                    await client.get(server.url + "/x")
                with pytest.raises(httpx.ConnectError):  # what the router and sync handle
                    await transport.forward(server.url, "POST", "/y", [], b"secret", 5.0)
            message = str(caught.value)
            assert f"TLS pin mismatch for {server.url}" in message
            assert b64url(pinned.public_key().raw) in message
            assert b64url(impostor.public_key().raw) in message
            await server.wait_ended(2)
            assert server.requests == 0  # the connections closed before a byte of request

    run(main())


def test_an_unpinned_https_origin_is_refused_without_connecting(run: Any, tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()

    async def main() -> None:
        async with TlsServer(key_context(tmp_path, key)) as server:
            transport = PeerTransport(limits=httpx.Limits(), pins=PinStore())
            async with httpx.AsyncClient(transport=transport) as client:
                with pytest.raises(UnpinnedPeer, match=f"refusing {server.url}: no site key"):
                    await client.get(server.url + "/x")
            assert server.connections == 0

    run(main())


def test_a_server_that_will_not_speak_tls_1_3_is_refused(run: Any, tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    # Ed25519 certificates exist from TLS 1.2 on; the site's client offers 1.3 only.
    context = key_context(tmp_path, key, maximum=ssl.TLSVersion.TLSv1_2)

    async def main() -> None:
        async with TlsServer(context) as server:
            transport = PeerTransport(limits=httpx.Limits(), pins=pins_for(server.url, key))
            async with httpx.AsyncClient(transport=transport) as client:
                with pytest.raises(httpx.ConnectError):
                    await client.get(server.url + "/x")
            assert server.requests == 0

    run(main())


def test_a_plain_http_server_at_a_pinned_origin_is_a_connect_error(run: Any) -> None:
    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(plain, "127.0.0.1", 0)
        url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        transport = PeerTransport(
            limits=httpx.Limits(), pins=pins_for(url, Ed25519PrivateKey.generate())
        )
        async with httpx.AsyncClient(transport=transport) as client:
            with pytest.raises(httpx.ConnectError):
                await client.get(url + "/x")
        server.close()

    run(main())


def test_a_changed_pin_closes_the_kept_alive_connections(run: Any, tmp_path: Path) -> None:
    key, rotated = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()

    async def main() -> None:
        async with TlsServer(key_context(tmp_path, key)) as server:
            pins = pins_for(server.url, key)
            transport = PeerTransport(limits=httpx.Limits(), pins=pins)
            async with httpx.AsyncClient(transport=transport) as client:
                assert (await client.get(server.url + "/x")).status_code == 200
                # The registry now pins another key for Denver: the open connection,
                # authenticated with the old one, must not carry another request.
                pins.note("Denver", server.url, b64url(rotated.public_key().raw), active=True)
                with pytest.raises(PinMismatch):
                    await client.get(server.url + "/x")
                pins.note("Denver", server.url, b64url(key.public_key().raw), active=True)
                assert (await client.get(server.url + "/x")).status_code == 200
                # Revoked: unpinned, refused without connecting.
                pins.note("Denver", server.url, b64url(key.public_key().raw), active=False)
                with pytest.raises(UnpinnedPeer):
                    await client.get(server.url + "/x")
            await server.wait_ended(3)
            assert server.requests == 2 and server.connections == 3

    run(main())


def test_pins_follow_registry_entries() -> None:
    a, b = b64url(b"a" * 32), b64url(b"b" * 32)
    pins = PinStore()
    changed: list[tuple[str, int]] = []
    pins.on_change.append(lambda host, port: changed.append((host, port)))
    pins.note("Berlin", "https://Berlin.example:8443/", a, active=True)
    assert pins.get("berlin.example", 8443) == b"a" * 32
    pins.note("Paris", "https://paris.example", b, active=True)  # default port
    assert pins.get("paris.example", 443) == b"b" * 32
    # Plain http and keys that are not 32 bytes pin nothing.
    pins.note("Denver", "http://denver.example:80", a, active=True)
    pins.note("Rome", "https://rome.example", "!!", active=True)
    pins.note("Oslo", "https://oslo.example", b64url(b"short"), active=True)
    assert len(pins) == 2 and changed == []
    # Berlin moves: its old origin is unpinned.
    pins.note("Berlin", "https://berlin.example:9443", a, active=True)
    assert pins.get("berlin.example", 8443) is None
    assert pins.get("berlin.example", 9443) == b"a" * 32
    assert changed == [("berlin.example", 8443)]
    # A revoked site whose endpoint another site holds by now does not unpin it.
    pins.note("Oslo", "https://berlin.example:9443", b, active=False)
    assert pins.get("berlin.example", 9443) == b"a" * 32
    pins.note("Berlin", "https://berlin.example:9443", a, active=False)
    assert pins.get("berlin.example", 9443) is None
    with pytest.raises(UnpinnedPeer, match=r"refusing https://berlin\.example:9443"):
        pins.require("berlin.example", 9443)


def _settings(tmp_path: Path, **tls: Any) -> SiteSettings:
    return SiteSettings(name="Berlin", data_dir=tmp_path / "berlin", admin_password="x", **tls)


async def _presented(port: int, context: ssl.SSLContext, server_name: str | None) -> bytes:
    _, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname=server_name
    )
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    return bytes(der)


def test_sites_get_the_site_key_certificate_and_clients_the_operators(
    run: Any, tmp_path: Path
) -> None:
    ca = ensure_local_ca(tmp_path / "ca")
    cert, key = tmp_path / "op.pem", tmp_path / "op-key.pem"
    issue_server_certificate(
        ca, hosts=["127.0.0.1", "localhost"], cert_file=cert, key_file=key, name="Berlin"
    )
    settings = _settings(tmp_path, tls=True, tls_cert_file=str(cert), tls_key_file=str(key))
    context = server_context(settings)  # makes the site key and its certificate
    site_key = Ed25519PrivateKey.from_pem((settings.data_dir / "keys/signing.pem").read_bytes())

    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=context)
        port = server.sockets[0].getsockname()[1]
        # A site: the reserved server name, and the site key's certificate.
        der = await _presented(port, site_client_context(), SITE_SERVER_NAME)
        assert ed25519_key_of_certificate(der) == site_key.public_key().raw
        # A client (the openstack CLI): the operator's certificate, verified by its CA.
        trusting = ssl.create_default_context(cafile=str(ca.cert_file))
        for name in ("localhost", "127.0.0.1"):
            der = await _presented(port, trusting, name)
            assert der == ssl.PEM_cert_to_DER_cert(cert.read_text())
        server.close()

    run(main())


def test_without_an_operator_certificate_everyone_gets_the_site_key_one(
    run: Any, tmp_path: Path
) -> None:
    settings = _settings(tmp_path, tls=True)
    context = server_context(settings)
    site_key = Ed25519PrivateKey.from_pem((settings.data_dir / "keys/signing.pem").read_bytes())
    relaxed = ssl.create_default_context()
    relaxed.check_hostname = False
    relaxed.verify_mode = ssl.CERT_NONE

    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=context)
        port = server.sockets[0].getsockname()[1]
        for ctx, name in ((relaxed, "localhost"), (site_client_context(), SITE_SERVER_NAME)):
            der = await _presented(port, ctx, name)
            assert ed25519_key_of_certificate(der) == site_key.public_key().raw
        server.close()

    run(main())


def test_tls_settings_that_cannot_work_are_refused(tmp_path: Path) -> None:
    from edgefed.core.errors import ValidationFailed

    with pytest.raises(ValidationFailed, match="tls_cert_file needs tls = true"):
        _settings(tmp_path, tls_cert_file="cert.pem")
    with pytest.raises(ValidationFailed, match="tls_key_file needs tls_cert_file"):
        _settings(tmp_path, tls=True, tls_key_file="key.pem")
    with pytest.raises(ValidationFailed, match="must be https"):
        _settings(tmp_path, tls=True, public_url="http://127.0.0.1:7001")
    assert _settings(tmp_path, tls=True).with_port(7001).public_url == "https://127.0.0.1:7001"


def test_a_tls_site_restarting_does_not_load_cryptography(tmp_path: Path) -> None:
    """Only making the certificate needs ``cryptography`` (a 7 MiB extension): a restart
    reads it back, and calling peers reads their keys, without it (docs/architecture.md)."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from edgefed.api.tls import server_context, site_client_context\n"
        "from edgefed.core.certs import ed25519_key_of_pem\n"
        "from edgefed.core.settings import SiteSettings\n"
        "s = SiteSettings(name='B', data_dir=Path(sys.argv[1]), admin_password='x', tls=True)\n"
        "server_context(s)\n"
        "site_client_context()\n"
        "ed25519_key_of_pem((s.data_dir / 'keys/signing-cert.pem').read_text())\n"
        "print('cryptography' in sys.modules)\n"
    )

    def loaded() -> str:
        run = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / "site")],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        return run.stdout.strip()

    assert loaded() == "True"  # the first start makes the certificate
    assert loaded() == "False"  # a restart does not need the library
