"""Revocation events: Keystone's revoke model, signed by the site that made them.

An event revokes every token issued at or before ``issued_before`` that matches all of
its non-null fields (user, project, domain, audit id, audit chain, issuer, application
credential). A site numbers its own events (``seq``, from 1, per site) and signs each
with its key, so they can travel through any other site (push, gossip) unaltered.

An event made by site S counts elsewhere only for tokens S issued: a receiver sets its
``issuer`` to S. A compromised site can thus revoke only its own tokens anywhere else.
``floor`` is the lowest of S's sequence numbers still alive when the event was made
(older ones expired): a site that never saw them needs not fetch them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from edgefed.core.ed25519 import Ed25519PrivateKey, Ed25519PublicKey, InvalidSignature
from edgefed.core.errors import ValidationFailed
from edgefed.core.tokens import b64url, b64url_decode

MAX_SEQ = 2**53 - 1
MAX_ID = 64
# The fields that select tokens (the event's "shape" is which of them are set).
MATCH_FIELDS = (
    "user_id",
    "project_id",
    "domain_id",
    "audit_id",
    "audit_chain_id",
    "issuer",
    "app_cred_id",
)


@dataclass(frozen=True, slots=True)
class RevocationEvent:
    issued_before: float
    user_id: str | None = None
    project_id: str | None = None
    domain_id: str | None = None
    audit_id: str | None = None
    audit_chain_id: str | None = None
    issuer: str | None = None
    app_cred_id: str | None = None
    # Which site made it, its number there, the lowest number still alive then, when it
    # was made, and its signature (None for an event not yet numbered and signed).
    origin: str | None = None
    seq: int | None = None
    floor: int = 1
    created_at: float = 0.0
    signature: str | None = None

    @property
    def shape(self) -> tuple[str, ...]:
        return tuple(f for f in MATCH_FIELDS if getattr(self, f) is not None)

    def message(self) -> bytes:
        doc = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        doc.pop("signature")
        return b"edgefed-revocation-event\n" + orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)

    def signed_by(self, key: Ed25519PrivateKey) -> RevocationEvent:
        return dataclasses.replace(self, signature=b64url(key.sign(self.message())))

    def verify(self, key: Ed25519PublicKey) -> None:
        try:
            key.verify(b64url_decode(self.signature or ""), self.message())
        except (InvalidSignature, ValueError) as exc:
            raise ValidationFailed(
                f"revocation event {self.origin}#{self.seq}: the signature does not verify",
                field="signature",
            ) from exc

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, raw: Any) -> RevocationEvent:
        """A signed event from another site, every field checked (ValidationFailed)."""
        if not isinstance(raw, Mapping):
            raise ValidationFailed("a revocation event must be an object", field="event")
        known = {f.name for f in dataclasses.fields(cls)}
        if set(raw) - known:
            raise ValidationFailed(
                f"unknown revocation event field(s): {sorted(set(raw) - known)[:3]}",
                field="event",
            )
        values: dict[str, Any] = {}
        for name in (*MATCH_FIELDS, "origin", "signature"):
            value = raw.get(name)
            if value is not None and (not isinstance(value, str) or not 0 < len(value) <= 100):
                raise ValidationFailed(f"revocation event field {name} must be a short text")
            values[name] = value
        for name in ("issued_before", "created_at"):
            value = raw.get(name, 0.0)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValidationFailed(f"revocation event field {name} must be a number")
            if not math.isfinite(value) or not 0 <= value < 1e11:
                raise ValidationFailed(f"revocation event field {name} must be a finite time")
            values[name] = float(value)
        for name in ("seq", "floor"):
            value = raw.get(name, 1)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SEQ:
                raise ValidationFailed(f"revocation event field {name} must be 1 to {MAX_SEQ}")
            values[name] = value
        if values["origin"] is None or values["signature"] is None:
            raise ValidationFailed("a revocation event names its origin and is signed")
        event = cls(**values)
        if not event.shape:
            raise ValidationFailed("a revocation event must select tokens by some field")
        return event


def matches(event: RevocationEvent, claims: Mapping[str, Any]) -> bool:
    """Whether ``event`` revokes the token of ``claims`` (the slow, obvious way; the
    revocation list indexes events by shape and does the same in O(shapes))."""
    return claims.get("iat", 0.0) <= event.issued_before and all(
        getattr(event, f) == value
        for f, value in zip(MATCH_FIELDS, token_fields(claims), strict=True)
        if getattr(event, f) is not None
    )


def token_fields(claims: Mapping[str, Any]) -> tuple[Any, ...]:
    """The values of ``MATCH_FIELDS`` for a token."""
    project = claims.get("project")
    domain = claims.get("domain")
    app_cred = claims.get("application_credential")
    return (
        (claims.get("user") or {}).get("id"),
        project.get("id") if isinstance(project, dict) else None,
        domain.get("id") if isinstance(domain, dict) else None,
        claims.get("jti"),
        claims.get("chain"),
        claims.get("iss"),
        app_cred.get("id") if isinstance(app_cred, dict) else None,
    )
