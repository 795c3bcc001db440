"""A small local certificate authority for a fleet on one machine (``edgefed up --tls``).

Clients (the ``openstack`` CLI, a browser) check a site's certificate the usual way:
a chain to a CA they trust and the host name they dialled. ``edgefed up --tls`` makes
one CA in the fleet directory and a certificate per site for the loopback names, and
points ``clouds.yaml`` at the CA (``cacert:``). Keys are ECDSA P-256, which every TLS
client accepts (a browser refuses Ed25519 certificates). Site-to-site calls do not use
any of this: they pin each peer's site key (core/certs.py, api/tls.py).

The CA is kept across runs (clients trust its file); site certificates are issued
again at each start, so they never expire under a running fleet.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edgefed.core.files import write_private

CA_DAYS = 3650
SITE_DAYS = 397  # what browsers accept for a server certificate


@dataclass(frozen=True, slots=True)
class LocalCA:
    cert_file: Path
    key_file: Path


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def ensure_local_ca(directory: Path, *, name: str = "edgefed local fleet CA") -> LocalCA:
    """The CA in ``directory`` (``ca.pem``, ``ca-key.pem``), made on first use."""
    ca = LocalCA(cert_file=directory / "ca.pem", key_file=directory / "ca-key.pem")
    if ca.cert_file.exists() and ca.key_file.exists():
        return ca
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    write_private(ca.key_file, _key_pem(key))
    write_private(ca.cert_file, _cert_pem(cert))
    return ca


def issue_server_certificate(
    ca: LocalCA, *, hosts: Sequence[str], cert_file: Path, key_file: Path, name: str
) -> None:
    """A certificate for ``hosts`` (names or IP addresses) signed by ``ca``; both 0600."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_key = serialization.load_pem_private_key(ca.key_file.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{ca.key_file} is not the local CA's ECDSA key")
    ca_cert = x509.load_pem_x509_certificate(ca.cert_file.read_bytes())
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=SITE_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    write_private(key_file, _key_pem(key))
    write_private(cert_file, _cert_pem(cert))


def _key_pem(key: object) -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: object) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    assert isinstance(cert, x509.Certificate)
    return cert.public_bytes(Encoding.PEM)
