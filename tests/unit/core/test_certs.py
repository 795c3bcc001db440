"""A site's certificate (core/certs.py): made once for its key, and read back by structure."""

from __future__ import annotations

import datetime
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID, ObjectIdentifier

from edgefed.core.certs import (
    SITE_SERVER_NAME,
    CertificateError,
    ed25519_key_of_certificate,
    ed25519_key_of_pem,
    ensure_site_certificate,
)
from edgefed.core.ed25519 import Ed25519PrivateKey


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_site_certificate_is_made_once_for_its_key_and_private(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    path = ensure_site_certificate(tmp_path / "keys" / "signing-cert.pem", key, name="Berlin")
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    public = cert.public_key()
    assert isinstance(public, ed25519.Ed25519PublicKey)
    assert public.public_bytes_raw() == key.public_key().raw
    public.verify(cert.signature, cert.tbs_certificate_bytes)  # self-signed, by the site key
    assert cert.subject == cert.issuer
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [SITE_SERVER_NAME]
    assert cert.not_valid_after_utc.year == 9999
    # The next start keeps it; a new site key gets a new certificate.
    first = path.read_bytes()
    ensure_site_certificate(path, key, name="Berlin")
    assert path.read_bytes() == first
    other = Ed25519PrivateKey.generate()
    ensure_site_certificate(path, other, name="Berlin")
    assert ed25519_key_of_pem(path.read_text()) == other.public_key().raw
    assert mode(path) == 0o600


def test_a_damaged_certificate_file_is_made_again(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "signing-cert.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    ensure_site_certificate(path, key, name="Berlin")
    assert ed25519_key_of_pem(path.read_text()) == key.public_key().raw


def _certificate(
    subject_key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey,
    extra: bytes | None = None,
) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(subject_key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if extra is not None:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.55555.1"), extra), False
        )
    algorithm = None if isinstance(subject_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(subject_key, algorithm).public_bytes(Encoding.DER)


def test_the_key_is_read_from_the_subject_key_info_not_found_in_the_bytes() -> None:
    pinned = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    presented = ed25519.Ed25519PrivateKey.generate()
    # A certificate for another key that carries the pinned key's bytes (even framed as
    # an Ed25519 SubjectPublicKeyInfo) in an extension: still the other key.
    spki_like = bytes.fromhex("302a300506032b6570032100") + pinned
    der = _certificate(presented, extra=spki_like)
    assert pinned in der
    assert ed25519_key_of_certificate(der) == presented.public_key().public_bytes_raw()


def test_what_is_not_an_ed25519_certificate_is_refused() -> None:
    ecdsa = _certificate(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(CertificateError, match="not an Ed25519"):
        ed25519_key_of_certificate(ecdsa)
    good = _certificate(ed25519.Ed25519PrivateKey.generate())
    for bad in (b"", b"\x30", good[:-1], good + b"\x00", b"\x30\x84\xff\xff\xff\xff", b"hello"):
        with pytest.raises(CertificateError):
            ed25519_key_of_certificate(bad)
    with pytest.raises(CertificateError):
        ed25519_key_of_pem("not a certificate")
