"""A site's TLS certificate: a self-signed X.509 certificate for its Ed25519 site key.

Site-to-site TLS authenticates a peer by the key the fleet registry pins for it, not by
a CA: the certificate only carries the key through the handshake (TLS 1.3 proves that
the peer holds the private key of the certificate it presents). So the certificate is
self-signed, never expires in practice (RFC 5280's 99991231235959Z) and names nothing a
client would check.

Reading the key back out of a peer's certificate happens on every new site-to-site
connection, so it is a small DER walk over the certificate's structure here
(Certificate → TBSCertificate → SubjectPublicKeyInfo), not an import of ``cryptography``
(a large extension; docs/bench.md) in every site. Making a certificate needs
``cryptography``: imported by ``site_certificate_pem`` only, at the first start of a TLS
site.
"""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

from edgefed.core.ed25519 import KEY_BYTES, Ed25519PrivateKey
from edgefed.core.files import write_private

# The server name a site sends (SNI) when it calls another site: the callee answers with
# its site-key certificate, whatever certificate its operator gave it for clients.
# ``.invalid`` is reserved (RFC 2606): no real host can have this name.
SITE_SERVER_NAME = "site.edgefed.invalid"

_SEQUENCE = 0x30
_INTEGER = 0x02
_BIT_STRING = 0x03
_OID = 0x06
_VERSION = 0xA0  # [0] EXPLICIT Version in a TBSCertificate
_ED25519_OID = bytes.fromhex("2b6570")  # 1.3.101.112 (RFC 8410)


class CertificateError(ValueError):
    """Not a certificate, or not one for an Ed25519 key."""


def _element(der: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """The DER element at ``pos``: (tag, start of its contents, end of its contents)."""
    if pos + 2 > end:
        raise CertificateError("truncated DER element")
    tag, first = der[pos], der[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > end:
            raise CertificateError("bad DER length")
        length = int.from_bytes(der[pos : pos + count], "big")
        pos += count
    if pos + length > end:
        raise CertificateError("DER element runs past its container")
    return tag, pos, pos + length


def _children(der: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out = []
    pos = start
    while pos < end:
        tag, begin, stop = _element(der, pos, end)
        out.append((tag, begin, stop))
        pos = stop
    return out


def ed25519_key_of_certificate(der: bytes) -> bytes:
    """The raw 32-byte Ed25519 public key of a DER certificate's SubjectPublicKeyInfo.

    CertificateError when ``der`` is not a certificate or its key is not Ed25519. Only
    the subject key counts: the same bytes anywhere else (a name, an extension) do not.
    """
    tag, start, end = _element(der, 0, len(der))
    if tag != _SEQUENCE or end != len(der):
        raise CertificateError("not a DER certificate")
    parts = _children(der, start, end)
    if len(parts) != 3 or parts[0][0] != _SEQUENCE:
        raise CertificateError("not a DER certificate")
    tbs = _children(der, parts[0][1], parts[0][2])
    if tbs and tbs[0][0] == _VERSION:
        tbs = tbs[1:]
    # serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, …
    if len(tbs) < 6 or tbs[0][0] != _INTEGER or any(t != _SEQUENCE for t, _, _ in tbs[1:6]):
        raise CertificateError("not a DER certificate")
    _, spki_start, spki_end = tbs[5]
    spki = _children(der, spki_start, spki_end)
    if len(spki) != 2 or spki[0][0] != _SEQUENCE or spki[1][0] != _BIT_STRING:
        raise CertificateError("malformed SubjectPublicKeyInfo")
    algorithm = _children(der, spki[0][1], spki[0][2])
    if (
        len(algorithm) != 1  # Ed25519 has no parameters (RFC 8410 §3)
        or algorithm[0][0] != _OID
        or der[algorithm[0][1] : algorithm[0][2]] != _ED25519_OID
    ):
        raise CertificateError("the certificate's key is not an Ed25519 key")
    bits = der[spki[1][1] : spki[1][2]]
    if len(bits) != 1 + KEY_BYTES or bits[0] != 0:
        raise CertificateError("malformed Ed25519 public key")
    return bits[1:]


def ed25519_key_of_pem(pem: str) -> bytes:
    """As ``ed25519_key_of_certificate``, for the first certificate of a PEM text."""
    try:
        der = ssl.PEM_cert_to_DER_cert(pem)
    except ValueError as exc:
        raise CertificateError(f"not a PEM certificate: {exc}") from exc
    return ed25519_key_of_certificate(der)


def site_certificate_pem(key: Ed25519PrivateKey, *, name: str) -> bytes:
    """A self-signed certificate for ``key`` (PEM), naming the site for people only."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import NameOID

    private = ed25519.Ed25519PrivateKey.from_private_bytes(key.seed)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"edgefed site {name}")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.UTC))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(SITE_SERVER_NAME)]), False)
        .sign(private, None)
    )
    return certificate.public_bytes(Encoding.PEM)


def ensure_site_certificate(path: Path, key: Ed25519PrivateKey, *, name: str) -> Path:
    """``path`` holds a certificate for ``key``: kept when it does, made (0600) when not.

    A certificate for another key (the site key was replaced) is made again: the key is
    what peers pin, the certificate only carries it.
    """
    try:
        if ed25519_key_of_pem(path.read_text()) == key.public_key().raw:
            return path
    except (OSError, CertificateError, UnicodeDecodeError):
        pass
    write_private(path, site_certificate_pem(key, name=name))
    return path
