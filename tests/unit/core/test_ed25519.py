"""edgefed's Ed25519 (libsodium) against cryptography's (OpenSSL): same keys, same
signatures, same PKCS#8 files, so key files and tokens from either side interoperate."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidSignature as CryptographyInvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from edgefed.core.ed25519 import Ed25519PrivateKey, Ed25519PublicKey, InvalidSignature

MESSAGE = b"eyJhbGciOiJFZERTQSJ9.eyJpc3MiOiJCZXJsaW4ifQ"


def test_a_pem_written_by_cryptography_loads_and_signs_identically() -> None:
    theirs = ed25519.Ed25519PrivateKey.generate()
    pem = theirs.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    ours = Ed25519PrivateKey.from_pem(pem)
    # Ed25519 is deterministic: the same key signs the same bytes identically.
    assert ours.sign(MESSAGE) == theirs.sign(MESSAGE)
    assert ours.public_key().raw == theirs.public_key().public_bytes_raw()
    assert ours.to_pem() == pem


def test_our_pem_and_signatures_are_accepted_by_cryptography() -> None:
    ours = Ed25519PrivateKey.generate()
    theirs = serialization.load_pem_private_key(ours.to_pem(), password=None)
    assert isinstance(theirs, ed25519.Ed25519PrivateKey)
    public = ed25519.Ed25519PublicKey.from_public_bytes(ours.public_key().raw)
    public.verify(ours.sign(MESSAGE), MESSAGE)
    with pytest.raises(CryptographyInvalidSignature):
        public.verify(ours.sign(MESSAGE), MESSAGE + b"x")


def test_verification_refuses_tampering_other_keys_and_bad_shapes() -> None:
    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    signature = key.sign(MESSAGE)
    public.verify(signature, MESSAGE)
    tampered = bytes([signature[0] ^ 1]) + signature[1:]
    for bad_signature, data in (
        (tampered, MESSAGE),
        (signature, MESSAGE[:-1]),
        (signature[:-1], MESSAGE),
        (b"", MESSAGE),
        (signature + b"\0", MESSAGE),
    ):
        with pytest.raises(InvalidSignature):
            public.verify(bad_signature, data)
    with pytest.raises(InvalidSignature):
        Ed25519PrivateKey.generate().public_key().verify(signature, MESSAGE)


def test_keys_of_the_wrong_size_are_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Ed25519PublicKey.from_public_bytes(b"\1" * 31)
    with pytest.raises(ValueError, match="32-byte seed"):
        Ed25519PrivateKey(b"\1" * 33)


def test_pem_files_that_are_not_ed25519_keys_say_so() -> None:
    rsa_pem = rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ValueError, match="not an Ed25519 private key"):
        Ed25519PrivateKey.from_pem(rsa_pem)
    with pytest.raises(ValueError, match="not a PEM"):
        Ed25519PrivateKey.from_pem(b"hello")
    with pytest.raises(ValueError, match="not base64|not an Ed25519"):
        Ed25519PrivateKey.from_pem(b"-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----")
