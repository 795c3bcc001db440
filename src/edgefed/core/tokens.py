"""Signed tokens: compact JWS with ``alg=EdDSA`` (Ed25519).

A site signs the tokens it issues with its own key; any site that knows the issuer's
public key validates them locally, without calling back, so validation keeps working
during partitions. The claims carry what every service needs to authorise a call
(user, scope, effective roles), so validation is a signature check, an expiry check and
a look into the revocation events held in memory.

Claims (``iat``/``exp`` are float seconds so revocation events compare exactly)::

    iss      issuing site name        jti     audit id (urlsafe base64)
    iat exp  issued / expires         chain   audit chain id (the first token's audit id)
    methods  ["password"] …           user    {id, name, domain: {id, name}}
    project | domain | system         the scope (at most one)
    roles    [{id, name}] with implied roles expanded
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson

from edgefed.core.ed25519 import Ed25519PrivateKey, Ed25519PublicKey, InvalidSignature
from edgefed.core.errors import Unauthorized
from edgefed.core.files import write_private

_HEADER_CACHE: dict[str, bytes] = {}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_audit_id() -> str:
    return b64url(secrets.token_bytes(16))


def _header(kid: str) -> bytes:
    cached = _HEADER_CACHE.get(kid)
    if cached is None:
        raw = orjson.dumps({"alg": "EdDSA", "typ": "JWT", "kid": kid})
        cached = _HEADER_CACHE[kid] = b64url(raw).encode("ascii")
    return cached


class TokenSigner:
    """Signs claims with one site's private key; ``kid`` is the site name."""

    def __init__(self, private_key: Ed25519PrivateKey, *, kid: str):
        self._key = private_key
        self.kid = kid
        self.public_key = private_key.public_key()

    @property
    def private_key(self) -> Ed25519PrivateKey:
        return self._key

    def sign(self, claims: Mapping[str, Any]) -> str:
        signing_input = _header(self.kid) + b"." + b64url(orjson.dumps(claims)).encode("ascii")
        signature = self._key.sign(signing_input)
        return (signing_input + b"." + b64url(signature).encode("ascii")).decode("ascii")


KeyLookup = Callable[[str], Ed25519PublicKey | None]


def verify_token(token: str, lookup: KeyLookup, *, now: float) -> dict[str, Any]:
    """The claims of a valid, unexpired token; Unauthorized (with the reason) otherwise."""
    parts = token.split(".")
    if len(parts) != 3:
        raise Unauthorized("The token is malformed (not a compact JWS).")
    try:
        header = orjson.loads(b64url_decode(parts[0]))
        signature = b64url_decode(parts[2])
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise Unauthorized("The token is malformed.") from exc
    if not isinstance(header, dict) or header.get("alg") != "EdDSA":
        raise Unauthorized("The token is not signed with EdDSA.")
    kid = header.get("kid")
    key = lookup(kid) if isinstance(kid, str) else None
    if key is None:
        raise Unauthorized(f"The token was issued by an unknown site ({kid!r}).")
    try:
        key.verify(signature, f"{parts[0]}.{parts[1]}".encode("ascii"))
    except InvalidSignature as exc:
        raise Unauthorized("The token signature is invalid.") from exc
    try:
        claims = orjson.loads(b64url_decode(parts[1]))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise Unauthorized("The token payload is malformed.") from exc
    if not isinstance(claims, dict) or claims.get("iss") != kid:
        raise Unauthorized("The token's issuer does not match its key.")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or exp <= now:
        raise Unauthorized("The token has expired.")
    return claims


def load_or_create_signing_key(path: Path) -> Ed25519PrivateKey:
    """The site's Ed25519 key, created on first start (file mode 0600)."""
    if path.exists():
        try:
            return Ed25519PrivateKey.from_pem(path.read_bytes())
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc
    key = Ed25519PrivateKey.generate()
    write_private(path, key.to_pem())
    return key


def public_key_b64(key: Ed25519PublicKey) -> str:
    return b64url(key.raw)


def public_key_from_b64(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(b64url_decode(text))
