"""Signed tokens: valid ones verify, anything altered, expired or foreign is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgefed.core.ed25519 import Ed25519PrivateKey
from edgefed.core.errors import Unauthorized
from edgefed.core.tokens import (
    TokenSigner,
    b64url,
    b64url_decode,
    load_or_create_signing_key,
    public_key_b64,
    public_key_from_b64,
    verify_token,
)


def _claims(exp: float = 2000.0) -> dict[str, object]:
    return {"iss": "Berlin", "iat": 1000.0, "exp": exp, "user": {"id": "u1"}}


def test_round_trip() -> None:
    signer = TokenSigner(Ed25519PrivateKey.generate(), kid="Berlin")
    token = signer.sign(_claims())
    claims = verify_token(token, {"Berlin": signer.public_key}.get, now=1500.0)
    assert claims["user"] == {"id": "u1"}


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda t: t[:-4] + ("AAAA" if not t.endswith("AAAA") else "BBBB"), "signature"),
        (lambda t: "x.y", "malformed"),
        (lambda t: "", "malformed"),
    ],
)
def test_tampered_tokens_are_refused(mutate, reason) -> None:  # type: ignore[no-untyped-def]
    signer = TokenSigner(Ed25519PrivateKey.generate(), kid="Berlin")
    with pytest.raises(Unauthorized, match=reason):
        verify_token(mutate(signer.sign(_claims())), {"Berlin": signer.public_key}.get, now=1500.0)


def test_payload_swap_is_refused() -> None:
    signer = TokenSigner(Ed25519PrivateKey.generate(), kid="Berlin")
    head, _, sig = signer.sign(_claims()).split(".")
    forged_claims = _claims()
    forged_claims["user"] = {"id": "root"}
    import orjson

    forged = f"{head}.{b64url(orjson.dumps(forged_claims))}.{sig}"
    with pytest.raises(Unauthorized, match="signature"):
        verify_token(forged, {"Berlin": signer.public_key}.get, now=1500.0)


def test_expired_and_unknown_issuer() -> None:
    signer = TokenSigner(Ed25519PrivateKey.generate(), kid="Berlin")
    token = signer.sign(_claims(exp=1200.0))
    with pytest.raises(Unauthorized, match="expired"):
        verify_token(token, {"Berlin": signer.public_key}.get, now=1200.0)
    with pytest.raises(Unauthorized, match="unknown site"):
        verify_token(token, {}.get, now=1100.0)


def test_key_of_another_site_does_not_verify() -> None:
    berlin = TokenSigner(Ed25519PrivateKey.generate(), kid="Berlin")
    impostor = Ed25519PrivateKey.generate().public_key()
    with pytest.raises(Unauthorized, match="signature"):
        verify_token(berlin.sign(_claims()), {"Berlin": impostor}.get, now=1500.0)


def test_key_file_is_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "signing.pem"
    first = load_or_create_signing_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    second = load_or_create_signing_key(path)
    assert public_key_b64(first.public_key()) == public_key_b64(second.public_key())
    restored = public_key_from_b64(public_key_b64(first.public_key()))
    assert public_key_b64(restored) == public_key_b64(first.public_key())


def test_b64url_round_trip() -> None:
    for n in range(0, 40):
        data = bytes(range(n))
        assert b64url_decode(b64url(data)) == data
