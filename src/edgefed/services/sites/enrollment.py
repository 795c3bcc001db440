"""One-time enrollment tokens.

The token an operator hands to a new site carries everything the new site needs to
join safely: where to go (the issuing site's URL), which key to expect there (the
issuer's public key, pinned — like kubeadm's CA certificate hash), and a one-time
secret. Only the secret's SHA-256 is stored; it is high-entropy, so no slow hash.
A token is made for one site name and enrolls that name once: a retry of the same join
(same name, same key) is answered again, anything else is refused for good.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

import orjson

from edgefed.core.errors import BadRequest
from edgefed.core.tokens import b64url, b64url_decode

PREFIX = "EF1."


@dataclass(frozen=True, slots=True)
class EnrollmentToken:
    issuer: str
    issuer_url: str
    issuer_key: str
    token_id: str
    secret: str
    # The site the token was made for (the issuer refuses any other name).
    site_name: str = ""

    def encode(self) -> str:
        payload = {
            "n": self.issuer,
            "u": self.issuer_url,
            "k": self.issuer_key,
            "i": self.token_id,
            "s": self.secret,
            "m": self.site_name,
        }
        return PREFIX + b64url(orjson.dumps(payload))

    @classmethod
    def decode(cls, text: str) -> EnrollmentToken:
        text = text.strip()
        if not text.startswith(PREFIX):
            raise BadRequest("not an edgefed enrollment token (expected it to start with EF1.)")
        try:
            raw = orjson.loads(b64url_decode(text[len(PREFIX) :]))
            return cls(
                issuer=str(raw["n"]),
                issuer_url=str(raw["u"]).rstrip("/"),
                issuer_key=str(raw["k"]),
                token_id=str(raw["i"]),
                secret=str(raw["s"]),
                site_name=str(raw.get("m", "")),
            )
        except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
            raise BadRequest("the enrollment token is malformed") from exc


def new_secret() -> tuple[str, str, str]:
    """(token id, secret, secret hash)."""
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(24)
    return token_id, secret, hash_secret(secret)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
