"""Signed site-to-site requests (gossip, join, sync): who sent it, to whom, and once.

The sender signs, with its Ed25519 site key::

    METHOD \\n PATH[?QUERY] \\n TIMESTAMP \\n NONCE \\n TARGET SITE \\n SHA256(BODY)

The receiver checks the signature with the key pinned in its registry, that the request
names *it* as the target (a request signed for Denver cannot be replayed at Berlin),
that the timestamp is a finite number within ``MAX_SKEW`` seconds of its clock, and that
the nonce was not seen from that sender inside the window (``NonceCache``): a request
captured on the way is good for nothing afterwards.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections import OrderedDict

from edgefed.core.ed25519 import Ed25519PrivateKey, Ed25519PublicKey, InvalidSignature
from edgefed.core.errors import Unauthorized
from edgefed.core.tokens import b64url, b64url_decode

SITE_HEADER = "x-edgefed-site"
TARGET_HEADER = "x-edgefed-target"
TIMESTAMP_HEADER = "x-edgefed-timestamp"
NONCE_HEADER = "x-edgefed-nonce"
SIGNATURE_HEADER = "x-edgefed-signature"
MAX_SKEW = 300.0
# Nonces remembered at most; past it the oldest are forgotten, and requests signed no
# later than the newest forgotten one are refused as too old (so no replay slips in).
MAX_NONCES = 200_000
_NONCE_MAX_LEN = 64


def _message(method: str, path: str, timestamp: str, nonce: str, target: str, body: bytes) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return f"{method.upper()}\n{path}\n{timestamp}\n{nonce}\n{target}\n{digest}".encode()


def sign_request(
    key: Ed25519PrivateKey,
    *,
    site: str,
    target: str,
    method: str,
    path: str,
    body: bytes,
    now: float,
) -> dict[str, str]:
    """The headers that sign one request from ``site`` to ``target`` (``path`` with its
    query string, exactly as sent)."""
    timestamp = f"{now:.3f}"
    nonce = b64url(secrets.token_bytes(16))
    signature = key.sign(_message(method, path, timestamp, nonce, target, body))
    return {
        SITE_HEADER: site,
        TARGET_HEADER: target,
        TIMESTAMP_HEADER: timestamp,
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: b64url(signature),
    }


class NonceCache:
    """The nonces seen per sender within the skew window, bounded in memory."""

    def __init__(
        self,
        *,
        max_entries: int = MAX_NONCES,
        window: float = MAX_SKEW,
        not_before: float = -math.inf,
    ):
        self.max_entries = max_entries
        self.window = window
        # (sender, nonce) -> the request's timestamp, oldest first by arrival.
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()
        # Requests signed at or before this are refused: set to the process's start, no
        # request signed before a restart (whose nonce is forgotten) can be replayed.
        self._floor = not_before

    def __len__(self) -> int:
        return len(self._seen)

    def check_and_add(self, sender: str, nonce: str, sent: float, *, now: float) -> None:
        """Unauthorized when (sender, nonce) was seen, or the request is older than what
        the cache can still vouch for; otherwise remember it."""
        if sent <= self._floor:
            raise Unauthorized("the site request is too old to be checked for replay")
        key = (sender, nonce)
        if key in self._seen:
            raise Unauthorized("the site request was already received (replayed nonce)")
        self._prune(now)
        if len(self._seen) >= self.max_entries:
            _, oldest = self._seen.popitem(last=False)
            self._floor = max(self._floor, oldest)
        self._seen[key] = sent

    def _prune(self, now: float) -> None:
        horizon = now - self.window
        while self._seen:
            key, sent = next(iter(self._seen.items()))
            if sent >= horizon:
                # Arrival order is close to timestamp order; an out-of-order older entry
                # behind a newer one stays until the newer one goes (bounded by size).
                return
            del self._seen[key]


def verify_request(
    key: Ed25519PublicKey,
    *,
    sender: str,
    method: str,
    path: str,
    body: bytes,
    timestamp: str,
    nonce: str,
    target: str,
    signature: str,
    expected_target: str,
    nonces: NonceCache,
    now: float,
) -> None:
    """Unauthorized (with the reason) unless the request is signed by ``key``, meant for
    ``expected_target``, fresh and not seen before."""
    if target != expected_target:
        raise Unauthorized(
            f"the site request is addressed to {target!r}, not to {expected_target!r}"
        )
    if not nonce or len(nonce) > _NONCE_MAX_LEN:
        raise Unauthorized("the site request carries no valid nonce")
    try:
        sent = float(timestamp)
        raw = b64url_decode(signature)
    except ValueError as exc:
        raise Unauthorized("malformed site signature headers") from exc
    if not math.isfinite(sent) or abs(now - sent) > MAX_SKEW:
        raise Unauthorized("the site request is too old or from the future (clock skew)")
    try:
        key.verify(raw, _message(method, path, timestamp, nonce, target, body))
    except InvalidSignature as exc:
        raise Unauthorized("the site request signature is invalid") from exc
    nonces.check_and_add(sender, nonce, sent, now=now)
