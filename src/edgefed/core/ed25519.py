"""Ed25519 keys for tokens and site signatures: libsodium (through PyNaCl), PKCS#8 files.

A site signs every token it issues and every site-to-site request with its Ed25519 key,
and verifies the fleet's. libsodium does that in a fraction of the memory that
``cryptography``'s extension takes (docs/bench.md), so ``cryptography`` stays for what
only it does (RSA keypair generation, SSH and x509 parsing in compute's keypairs),
imported there when used.

Key files are PKCS#8 PEM as RFC 8410 defines them for Ed25519 (the form OpenSSL and
``cryptography`` write), so a site's ``signing.pem`` is interchangeable with theirs.
"""

from __future__ import annotations

import base64
import binascii
import os

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

KEY_BYTES = 32
SIGNATURE_BYTES = 64
# PrivateKeyInfo { version 0, AlgorithmIdentifier { id-Ed25519 1.3.101.112 },
#                  OCTET STRING { OCTET STRING (32-byte seed) } }
_PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")
_PEM_BEGIN = b"-----BEGIN PRIVATE KEY-----"
_PEM_END = b"-----END PRIVATE KEY-----"


class InvalidSignature(Exception):
    """The signature does not match the data and key."""


class Ed25519PublicKey:
    __slots__ = ("_key", "raw")

    def __init__(self, raw: bytes):
        if not isinstance(raw, bytes) or len(raw) != KEY_BYTES:
            raise ValueError(f"an Ed25519 public key is {KEY_BYTES} bytes")
        self.raw = raw
        self._key = VerifyKey(raw)

    @classmethod
    def from_public_bytes(cls, raw: bytes) -> Ed25519PublicKey:
        return cls(raw)

    def verify(self, signature: bytes, data: bytes) -> None:
        """Return if ``signature`` is this key's over ``data``; InvalidSignature otherwise."""
        if len(signature) != SIGNATURE_BYTES:
            raise InvalidSignature(f"an Ed25519 signature is {SIGNATURE_BYTES} bytes")
        try:
            self._key.verify(data, signature)
        except (BadSignatureError, ValueError, TypeError) as exc:
            raise InvalidSignature("the signature does not match") from exc

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ed25519PublicKey) and other.raw == self.raw

    def __hash__(self) -> int:
        return hash(self.raw)


class Ed25519PrivateKey:
    __slots__ = ("_key", "_public", "seed")

    def __init__(self, seed: bytes):
        if not isinstance(seed, bytes) or len(seed) != KEY_BYTES:
            raise ValueError(f"an Ed25519 private key is a {KEY_BYTES}-byte seed")
        self.seed = seed
        self._key = SigningKey(seed)
        self._public = Ed25519PublicKey(bytes(self._key.verify_key))

    @classmethod
    def generate(cls) -> Ed25519PrivateKey:
        return cls(os.urandom(KEY_BYTES))

    def public_key(self) -> Ed25519PublicKey:
        return self._public

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data).signature

    def to_pem(self) -> bytes:
        body = base64.encodebytes(_PKCS8_PREFIX + self.seed).strip()
        return _PEM_BEGIN + b"\n" + body + b"\n" + _PEM_END + b"\n"

    @classmethod
    def from_pem(cls, data: bytes) -> Ed25519PrivateKey:
        """Read an unencrypted PKCS#8 PEM Ed25519 key; ValueError saying what is wrong."""
        text = data.strip()
        if not (text.startswith(_PEM_BEGIN) and text.endswith(_PEM_END)):
            raise ValueError("not a PEM 'PRIVATE KEY' (unencrypted PKCS#8) file")
        try:
            der = base64.b64decode(b"".join(text[len(_PEM_BEGIN) : -len(_PEM_END)].split()))
        except binascii.Error as exc:
            raise ValueError("the PEM body is not base64") from exc
        if len(der) != len(_PKCS8_PREFIX) + KEY_BYTES or not der.startswith(_PKCS8_PREFIX):
            raise ValueError("the key is not an Ed25519 private key")
        return cls(der[len(_PKCS8_PREFIX) :])
