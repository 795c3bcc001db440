"""Signed site-to-site requests (gossip, join): who sent it, and that nobody altered it.

The sender signs ``METHOD\\nPATH\\nTIMESTAMP\\nSHA256(BODY)`` with its Ed25519 site key;
the receiver checks the signature with the key pinned in its registry and refuses
requests older or newer than ``MAX_SKEW`` seconds (replays).
"""

from __future__ import annotations

import hashlib

from edgefed.core.ed25519 import Ed25519PrivateKey, Ed25519PublicKey, InvalidSignature
from edgefed.core.errors import Unauthorized
from edgefed.core.tokens import b64url, b64url_decode

SITE_HEADER = "x-edgefed-site"
TIMESTAMP_HEADER = "x-edgefed-timestamp"
SIGNATURE_HEADER = "x-edgefed-signature"
MAX_SKEW = 300.0


def _message(method: str, path: str, timestamp: str, body: bytes) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return f"{method.upper()}\n{path}\n{timestamp}\n{digest}".encode()


def sign_request(
    key: Ed25519PrivateKey, *, site: str, method: str, path: str, body: bytes, now: float
) -> dict[str, str]:
    timestamp = f"{now:.3f}"
    signature = key.sign(_message(method, path, timestamp, body))
    return {SITE_HEADER: site, TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: b64url(signature)}


def verify_request(
    key: Ed25519PublicKey,
    *,
    method: str,
    path: str,
    body: bytes,
    timestamp: str,
    signature: str,
    now: float,
) -> None:
    try:
        sent = float(timestamp)
        raw = b64url_decode(signature)
    except ValueError as exc:
        raise Unauthorized("malformed site signature headers") from exc
    if abs(now - sent) > MAX_SKEW:
        raise Unauthorized("the site request is too old or from the future (clock skew)")
    try:
        key.verify(raw, _message(method, path, timestamp, body))
    except InvalidSignature as exc:
        raise Unauthorized("the site request signature is invalid") from exc
