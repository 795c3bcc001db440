"""A compromised site, for security tests: a real fleet member's key in an attacker's hands.

``HostileSite`` loads the signing key from a site's data directory (what a thief who
walked off with the box would have) and does with it what the site's code never would:
mints tokens with any claims, signs site-to-site requests of any shape, for any target.
Everything it sends goes over real sockets to real site processes; the tests assert that
the rest of the fleet refuses it with a 4xx and keeps serving.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from edgefed.core.ed25519 import Ed25519PrivateKey
from edgefed.core.ids import DEFAULT_DOMAIN_ID, predictable_id
from edgefed.core.sitesig import sign_request
from edgefed.core.tokens import TokenSigner, new_audit_id, public_key_b64

DEFAULT_DOMAIN = {"id": DEFAULT_DOMAIN_ID, "name": "Default"}


def role_refs(*names: str) -> list[dict[str, str]]:
    return [{"id": predictable_id("role", n, domain_id=""), "name": n} for n in names]


@dataclass
class HostileSite:
    name: str
    key: Ed25519PrivateKey
    clock_skew: float = 0.0

    @classmethod
    def from_data_dir(cls, name: str, data_dir: Path) -> HostileSite:
        pem = (data_dir / "keys" / "signing.pem").read_bytes()
        return cls(name=name, key=Ed25519PrivateKey.from_pem(pem))

    @property
    def public_key(self) -> str:
        return public_key_b64(self.key.public_key())

    def now(self) -> float:
        return time.time() + self.clock_skew

    def claims(
        self,
        *,
        user: str = "mallory",
        user_id: str | None = None,
        project: str | None = "admin",
        roles: tuple[str, ...] = ("admin", "member", "reader"),
        ttl: float = 3600.0,
        issuer: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Claims as a site would issue them, for any user and roles the attacker likes."""
        now = self.now()
        audit = new_audit_id()
        claims: dict[str, Any] = {
            "iss": issuer or self.name,
            "iat": now,
            "exp": now + ttl,
            "jti": audit,
            "chain": audit,
            "methods": ["password"],
            "user": {
                "id": user_id or predictable_id("user", user),
                "name": user,
                "domain": DEFAULT_DOMAIN,
            },
            "roles": role_refs(*roles),
        }
        if project is not None:
            claims["project"] = {
                "id": predictable_id("project", project),
                "name": project,
                "domain": DEFAULT_DOMAIN,
            }
        claims.update(extra)
        return claims

    def token(self, claims: dict[str, Any] | None = None, **kwargs: Any) -> str:
        """A token signed with the stolen key (``claims``, or ``self.claims(**kwargs)``)."""
        signer = TokenSigner(self.key, kid=self.name)
        return signer.sign(claims if claims is not None else self.claims(**kwargs))

    def signed_headers(
        self, *, target: str, method: str, path: str, body: bytes = b""
    ) -> dict[str, str]:
        return sign_request(
            self.key,
            site=self.name,
            target=target,
            method=method,
            path=path,
            body=body,
            now=self.now(),
        )

    def call(
        self,
        base_url: str,
        *,
        target: str,
        method: str,
        path: str,
        payload: Any = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> httpx.Response:
        """One site-signed request, as the compromised site would send it."""
        if body is None:
            body = b"" if payload is None else orjson.dumps(payload)
        all_headers = self.signed_headers(target=target, method=method, path=path, body=body)
        if payload is not None:
            all_headers["content-type"] = "application/json"
        all_headers.update(headers or {})
        return httpx.request(
            method, base_url.rstrip("/") + path, content=body, headers=all_headers, timeout=timeout
        )
