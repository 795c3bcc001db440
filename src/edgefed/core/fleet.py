"""The fleet registry's entries: what a site says of itself, and what others signed of it.

Every site holds a copy of the registry, so routing and token checks work during
partitions; copies converge by gossip. An entry carries the site's own statement
(endpoint, key, location, labels, capabilities, version, signed with its key), the
``Enrollment`` an authority signed when it joined, the ``Rotation``s of its key, each
signed by the key before, and the ``Revocation`` an authority signed, if any. Every
field is checked when an entry is read from the wire or the store (``from_json``).
Who may sign what, and which entry wins: ``core.fleet_rules``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import orjson

from edgefed.core.ed25519 import InvalidSignature
from edgefed.core.errors import ValidationFailed
from edgefed.core.settings import SITE_NAME_RE, Location
from edgefed.core.tokens import b64url, b64url_decode, public_key_from_b64

# Versions stay exact in JSON and in a 64-bit column, with room to count up.
MAX_VERSION = 2**53 - 1
MAX_LABELS = 32
MAX_CAPABILITIES = 16
MAX_ROTATIONS = 16
MAX_ENDPOINT = 255
MAX_LABEL_KEY = 63
MAX_LABEL_VALUE = 255
MAX_SHORT_TEXT = 64


class SiteStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


class MissingAuthority(ValidationFailed):
    """An entry was enrolled or revoked by a site this registry does not know (yet)."""


class RevokedAuthority(ValidationFailed):
    """An entry was enrolled or revoked by an authority that is revoked now: it cannot be
    taken any more, yet it is no forgery (sites that took it earlier still hold it)."""


def _canonical(doc: Mapping[str, Any]) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def verify_signature(key_b64: str, signature: str, message: bytes, what: str) -> None:
    try:
        public_key_from_b64(key_b64).verify(b64url_decode(signature), message)
    except (InvalidSignature, ValueError) as exc:
        raise ValidationFailed(f"{what}: the signature does not verify", field="signature") from exc


@dataclass(frozen=True, slots=True)
class Enrollment:
    """An authority's statement: site ``name`` joined the fleet with ``key`` at ``at``."""

    by: str
    key: str
    authority: bool
    at: float
    signature: str = ""

    def message(self, name: str) -> bytes:
        doc = {"enroll": name, "key": self.key, "authority": self.authority, "at": self.at}
        return b"edgefed-enrollment\n" + _canonical({**doc, "by": self.by})

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class Rotation:
    """The holder of ``old_key`` hands the site's name over to ``new_key``."""

    old_key: str
    new_key: str
    at: float
    signature: str = ""

    def message(self, name: str) -> bytes:
        doc = {"rotate": name, "old": self.old_key, "new": self.new_key, "at": self.at}
        return b"edgefed-rotation\n" + _canonical(doc)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class Revocation:
    """An authority's statement: site ``name`` with ``key`` is out of the fleet."""

    by: str
    at: float
    signature: str = ""

    def message(self, name: str, key: str) -> bytes:
        doc = {"revoke": name, "key": key, "at": self.at, "by": self.by}
        return b"edgefed-revocation\n" + _canonical(doc)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class SiteEntry:
    name: str
    endpoint: str
    public_key: str
    version: int = 1
    location: Location = field(default_factory=Location)
    labels: Mapping[str, str] = field(default_factory=dict)
    capabilities: tuple[str, ...] = ()
    updated_at: float = 0.0
    # By ``public_key``, over ``body()``.
    signature: str = ""
    enrollment: Enrollment | None = None
    rotations: tuple[Rotation, ...] = ()
    revocation: Revocation | None = None

    @property
    def status(self) -> SiteStatus:
        return SiteStatus.REVOKED if self.revocation is not None else SiteStatus.ACTIVE

    @property
    def active(self) -> bool:
        return self.revocation is None

    @property
    def authority(self) -> bool:
        """Whether this site may enroll and revoke sites."""
        return self.enrollment is not None and self.enrollment.authority

    def body(self) -> dict[str, Any]:
        """What the site itself signs."""
        return {
            "name": self.name,
            "endpoint": self.endpoint,
            "public_key": self.public_key,
            "version": self.version,
            "location": dataclasses.asdict(self.location),
            "labels": dict(self.labels),
            "capabilities": list(self.capabilities),
            "updated_at": self.updated_at,
        }

    def body_message(self) -> bytes:
        return b"edgefed-site\n" + _canonical(self.body())

    def to_json(self) -> dict[str, Any]:
        doc = self.body()
        doc["status"] = self.status.value
        doc["signature"] = self.signature
        doc["enrollment"] = self.enrollment.to_json() if self.enrollment else None
        doc["rotations"] = [r.to_json() for r in self.rotations]
        doc["revocation"] = self.revocation.to_json() if self.revocation else None
        return doc

    @classmethod
    def from_json(cls, raw: Any) -> SiteEntry:
        """An entry from the wire or the store, every field checked (ValidationFailed)."""
        if not isinstance(raw, Mapping):
            raise ValidationFailed("a site entry must be an object", field="site")
        name = _text(raw, "name", MAX_SHORT_TEXT, where="site entry")
        if not SITE_NAME_RE.fullmatch(name):
            raise ValidationFailed(f"invalid site name {name!r}", field="name")
        where = f"site entry {name}"
        endpoint = _endpoint(raw.get("endpoint"), where)
        public_key = _key(raw.get("public_key"), f"{where}: public_key")
        labels = raw.get("labels") or {}
        caps = raw.get("capabilities") or []
        if not isinstance(labels, Mapping) or len(labels) > MAX_LABELS:
            raise ValidationFailed(
                f"{where}: labels must be an object of at most {MAX_LABELS}", field="labels"
            )
        for k, v in labels.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise ValidationFailed(f"{where}: labels must map text to text", field="labels")
            if not 0 < len(k) <= MAX_LABEL_KEY or len(v) > MAX_LABEL_VALUE:
                raise ValidationFailed(f"{where}: label {k[:40]!r} is too long", field="labels")
        if not isinstance(caps, list) or len(caps) > MAX_CAPABILITIES:
            raise ValidationFailed(
                f"{where}: capabilities must be a list of at most {MAX_CAPABILITIES}",
                field="capabilities",
            )
        if not all(isinstance(c, str) and 0 < len(c) <= MAX_SHORT_TEXT for c in caps):
            raise ValidationFailed(f"{where}: capabilities must be short texts", field="caps")
        rotations_raw = raw.get("rotations") or []
        if not isinstance(rotations_raw, list) or len(rotations_raw) > MAX_ROTATIONS:
            raise ValidationFailed(
                f"{where}: rotations must be a list of at most {MAX_ROTATIONS}", field="rotations"
            )
        entry = cls(
            name=name,
            endpoint=endpoint,
            public_key=public_key,
            version=_version(raw.get("version", 1), where),
            location=_location(raw.get("location") or {}, where),
            labels=dict(labels),
            capabilities=tuple(caps),
            updated_at=_time(raw.get("updated_at", 0.0), f"{where}: updated_at"),
            signature=_signature(raw.get("signature", ""), where, required=False),
            enrollment=_enrollment(raw.get("enrollment"), where),
            rotations=tuple(_rotation(r, where) for r in rotations_raw),
            revocation=_revocation(raw.get("revocation"), where),
        )
        status = raw.get("status", entry.status.value)
        if status != entry.status.value:
            raise ValidationFailed(
                f"{where}: status {status!r} does not match its revocation", field="status"
            )
        return entry


# ---- field checks -----------------------------------------------------------------------


def _text(raw: Mapping[str, Any], key: str, limit: int, *, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise ValidationFailed(f"{where}: {key!r} must be a non-empty text", field=key)
    return value


def _endpoint(value: Any, where: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ENDPOINT:
        raise ValidationFailed(f"{where}: endpoint must be a URL", field="endpoint")
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError as exc:
        raise ValidationFailed(f"{where}: endpoint has an invalid port", field="endpoint") from exc
    del port
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.query
        or parts.fragment
        or any(c.isspace() for c in value)
    ):
        raise ValidationFailed(
            f"{where}: endpoint {value[:80]!r} must be an http(s) URL with a host and no "
            "credentials, query or fragment",
            field="endpoint",
        )
    return value.rstrip("/")


def _key(value: Any, where: str) -> str:
    if not isinstance(value, str) or len(value) > 64:
        raise ValidationFailed(f"{where} must be an Ed25519 public key", field="public_key")
    try:
        raw = b64url_decode(value)
    except ValueError as exc:
        raise ValidationFailed(f"{where} is not base64url", field="public_key") from exc
    if len(raw) != 32 or b64url(raw) != value:
        raise ValidationFailed(f"{where} must be 32 bytes in base64url", field="public_key")
    return value


def _signature(value: Any, where: str, *, required: bool = True) -> str:
    if value == "" and not required:
        return ""
    if not isinstance(value, str) or len(value) > 100:
        raise ValidationFailed(f"{where}: malformed signature", field="signature")
    try:
        raw = b64url_decode(value)
    except ValueError as exc:
        raise ValidationFailed(f"{where}: malformed signature", field="signature") from exc
    if len(raw) != 64:
        raise ValidationFailed(f"{where}: malformed signature", field="signature")
    return value


def _version(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_VERSION:
        raise ValidationFailed(
            f"{where}: version must be an integer from 1 to {MAX_VERSION}", field="version"
        )
    return value


def _time(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationFailed(f"{where} must be a number", field="time")
    number = float(value)
    if not math.isfinite(number) or not 0.0 <= number < 1e11:
        raise ValidationFailed(f"{where} must be a finite time in seconds", field="time")
    return number


def _location(loc: Any, where: str) -> Location:
    if not isinstance(loc, Mapping):
        raise ValidationFailed(f"{where}: location must be an object", field="location")
    lat = _coordinate(loc.get("lat", 0.0), 90.0, f"{where}: lat")
    lon = _coordinate(loc.get("lon", 0.0), 180.0, f"{where}: lon")
    texts = {k: loc.get(k, "") for k in ("country", "region")}
    for k, v in texts.items():
        if not isinstance(v, str) or len(v) > MAX_SHORT_TEXT:
            raise ValidationFailed(f"{where}: location {k} must be a short text", field=k)
    return Location(lat=lat, lon=lon, country=texts["country"], region=texts["region"])


def _coordinate(value: Any, bound: float, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationFailed(f"{where} must be a number", field="location")
    number = float(value)
    if not math.isfinite(number) or abs(number) > bound:
        raise ValidationFailed(f"{where} must be within ±{bound:g}", field="location")
    return number


def _object(raw: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise ValidationFailed(f"{what} must be an object", field=what)
    return raw


def _enrollment(raw: Any, where: str) -> Enrollment | None:
    if raw is None:
        return None
    doc = _object(raw, f"{where}: enrollment")
    by = _text(doc, "by", MAX_SHORT_TEXT, where=f"{where}: enrollment")
    authority = doc.get("authority", False)
    if not isinstance(authority, bool):
        raise ValidationFailed(f"{where}: enrollment authority must be a boolean")
    return Enrollment(
        by=by,
        key=_key(doc.get("key"), f"{where}: enrollment key"),
        authority=authority,
        at=_time(doc.get("at"), f"{where}: enrollment time"),
        signature=_signature(doc.get("signature"), f"{where}: enrollment"),
    )


def _rotation(raw: Any, where: str) -> Rotation:
    doc = _object(raw, f"{where}: rotation")
    return Rotation(
        old_key=_key(doc.get("old_key"), f"{where}: rotation old_key"),
        new_key=_key(doc.get("new_key"), f"{where}: rotation new_key"),
        at=_time(doc.get("at"), f"{where}: rotation time"),
        signature=_signature(doc.get("signature"), f"{where}: rotation"),
    )


def _revocation(raw: Any, where: str) -> Revocation | None:
    if raw is None:
        return None
    doc = _object(raw, f"{where}: revocation")
    return Revocation(
        by=_text(doc, "by", MAX_SHORT_TEXT, where=f"{where}: revocation"),
        at=_time(doc.get("at"), f"{where}: revocation time"),
        signature=_signature(doc.get("signature"), f"{where}: revocation"),
    )
