"""The fleet registry of this site: durable copy, in-memory view, joins and merges.

Writes go to the store first, then to the in-memory view, so an entry a site has
acknowledged survives a crash. Every incoming entry passes ``core.fleet.check_incoming``
(signatures, enrollment by an authority, rotations, revocations, every field) and a
batch is taken whole or not at all: one forged entry and nothing of it is stored. An
entry that an authority revoked since signed is left out of its batch, never taken.

A site started without a join token founds its own fleet: it enrolls itself, as an
authority. A site that joins is enrolled by the authority that issued its token.
A key rotation is prepared offline (``edgefed site rotate-key``: a new key and a
rotation signed by the old one, in ``keys/``) and published at the next start.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import orjson

from edgefed.api.context import SiteContext
from edgefed.api.fleetview import FleetView
from edgefed.api.sitecalls import signed_headers
from edgefed.core.ed25519 import Ed25519PrivateKey
from edgefed.core.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    Unauthorized,
    Unavailable,
    ValidationFailed,
)
from edgefed.core.files import write_private
from edgefed.core.fleet import MissingAuthority, RevokedAuthority, Rotation, SiteEntry
from edgefed.core.fleet_rules import (
    check_incoming,
    enrollment_for,
    revocation_for,
    rotation_for,
    signed,
)
from edgefed.core.tokens import public_key_b64
from edgefed.services.sites.enrollment import EnrollmentToken
from edgefed.services.sites.revocations import RevocationFeed
from edgefed.store.fleet import FleetRepository

log = logging.getLogger("edgefed.fleet")

ROTATION_FILE = "rotation.json"


def pending_rotation(data_dir: Path) -> Rotation | None:
    """The rotation ``edgefed site rotate-key`` left in ``keys/``, if any."""
    path = data_dir / "keys" / ROTATION_FILE
    if not path.exists():
        return None
    doc = orjson.loads(path.read_bytes())
    return Rotation(
        old_key=str(doc["old_key"]),
        new_key=str(doc["new_key"]),
        at=float(doc["at"]),
        signature=str(doc["signature"]),
    )


def rotate_key(data_dir: Path, *, now: float) -> Rotation:
    """Prepare a key rotation for the (stopped) site of ``data_dir``: a new key, the old
    one kept as ``signing.pem.old``, and the rotation signed by the old key, which the
    site publishes at its next start. Tokens signed with the old key stop working."""
    keys = data_dir / "keys"
    current = keys / "signing.pem"
    name = _site_name_of(data_dir)
    if (keys / ROTATION_FILE).exists():
        raise RuntimeError(f"a rotation is already pending in {keys}; start the site first")
    old = Ed25519PrivateKey.from_pem(current.read_bytes())
    new = Ed25519PrivateKey.generate()
    rotation = rotation_for(name, old=old, new_key=public_key_b64(new.public_key()), at=now)
    write_private(keys / "signing.pem.old", old.to_pem())
    write_private(keys / ROTATION_FILE, orjson.dumps(rotation.to_json()))
    write_private(current, new.to_pem())
    return rotation


def _site_name_of(data_dir: Path) -> str:
    name_file = data_dir / "keys" / "site-name"
    if name_file.exists():
        return name_file.read_text().strip()
    raise RuntimeError(f"{data_dir} holds no site (keys/site-name is missing)")


class Registry:
    def __init__(self, ctx: SiteContext, *, capabilities: tuple[str, ...]):
        name_file = ctx.settings.data_dir / "keys" / "site-name"
        if not name_file.exists():
            write_private(name_file, ctx.name.encode())
        self.ctx = ctx
        self.repo = FleetRepository(ctx.store)
        self.view = FleetView(self_name=ctx.name, keyring=ctx.keyring, peers=ctx.peers)
        self.capabilities = capabilities
        self.feed = RevocationFeed(ctx)
        self._lock = asyncio.Lock()

    @property
    def public_key(self) -> str:
        return public_key_b64(self.ctx.signer.public_key)

    async def load(self) -> None:
        """Load the durable registry and (re)publish this site's own entry."""
        await self._load()
        self._forget_published_rotation()

    def _forget_published_rotation(self) -> None:
        """A rotation in ``keys/`` that this site's entry carries is done: the next
        ``edgefed site rotate-key`` may prepare another."""
        data_dir = self.ctx.settings.data_dir
        rotation = pending_rotation(data_dir)
        mine = self.view.entries.get(self.ctx.name)
        if rotation is not None and mine is not None and rotation in mine.rotations:
            (data_dir / "keys" / ROTATION_FILE).unlink()

    async def _load(self) -> None:
        self.view.apply(await self.repo.all())
        current = self.view.entries.get(self.ctx.name)
        if current is not None and current.revocation is not None:
            log.warning("this site (%s) is revoked from its fleet", self.ctx.name)
            return
        rotations = current.rotations if current is not None else ()
        if current is not None and current.public_key != self.public_key:
            rotation = pending_rotation(self.ctx.settings.data_dir)
            if rotation is None or (rotation.old_key, rotation.new_key) != (
                current.public_key,
                self.public_key,
            ):
                raise RuntimeError(
                    f"the registry pins another key for {self.ctx.name}: the data directory's "
                    "keys/ do not belong to this registry (and no rotation signed by the "
                    "pinned key is pending)"
                )
            rotations = (*rotations, rotation)
        enrollment = current.enrollment if current is not None else None
        if enrollment is None and not self.ctx.settings.join_token:
            enrollment = self._found()
        mine = self._describe_self(
            version=1 if current is None else current.version,
            enrollment=enrollment,
            rotations=rotations,
        )
        if (
            current is not None
            and mine.body() == current.body() | {"updated_at": mine.updated_at}
            and (mine.enrollment, mine.rotations) == (current.enrollment, current.rotations)
        ):
            return
        if current is not None:
            mine = dataclasses.replace(mine, version=current.version + 1)
        await self._publish(mine)

    def _found(self) -> Any:
        """This site founds a fleet: it enrolls itself, as an authority."""
        return enrollment_for(
            self.ctx.name,
            self.public_key,
            by=self.ctx.name,
            authority=True,
            at=self.ctx.clock(),
            signer=self.ctx.signer.private_key,
        )

    async def _publish(self, entry: SiteEntry) -> None:
        entry = signed(entry, self.ctx.signer.private_key)
        await self.repo.put([entry])
        self.view.apply([entry])

    def _describe_self(
        self, *, version: int, enrollment: Any, rotations: tuple[Rotation, ...]
    ) -> SiteEntry:
        s = self.ctx.settings
        return SiteEntry(
            name=s.name,
            endpoint=self.ctx.public_url,
            public_key=self.public_key,
            version=version,
            location=s.location,
            labels=dict(s.labels),
            capabilities=self.capabilities,
            updated_at=self.ctx.clock(),
            enrollment=enrollment,
            rotations=rotations,
        )

    @property
    def self_entry(self) -> SiteEntry:
        return self.view.entries[self.ctx.name]

    def entries(self) -> list[SiteEntry]:
        return sorted(self.view.entries.values(), key=lambda e: e.name)

    def authorities(self) -> list[str]:
        return [e.name for e in self.entries() if e.authority and e.active]

    async def merge(
        self, incoming: Iterable[SiteEntry], *, trust_roots: bool = False
    ) -> list[SiteEntry]:
        """Check every incoming entry, then store and apply the ones that win, all at
        once; ValidationFailed (nothing stored) if any is forged or not allowed."""
        async with self._lock:
            winners = self._check_batch(list(incoming), trust_roots=trust_roots)
            if winners:
                await self.repo.put(winners)
                self.view.apply(winners)
            return winners

    def _check_batch(self, pending: list[SiteEntry], *, trust_roots: bool) -> list[SiteEntry]:
        known = dict(self.view.entries)
        winners: dict[str, SiteEntry] = {}
        missing: MissingAuthority | None = None
        for _ in range(len(pending) + 1):  # each pass settles at least one entry, or stops
            missing, waiting = None, []
            for entry in pending:
                if entry.name == self.ctx.name and not self._about_me(entry):
                    continue
                try:
                    wins = check_incoming(
                        entry, local=known.get(entry.name), known=known, trust_roots=trust_roots
                    )
                except MissingAuthority as exc:
                    missing = missing or exc
                    waiting.append(entry)
                    continue
                except RevokedAuthority as exc:
                    # Signed by an authority revoked since (before its revocation, or
                    # by whoever holds its key now): never taken, but no forgery of the
                    # sender's either. Left out, so that it does not keep the rest of
                    # the batch (the revocation itself, often) from this site.
                    log.info("registry entry %s left out: %s", entry.name, exc.message)
                    continue
                if wins:
                    winners[entry.name] = known[entry.name] = entry
            if len(waiting) == len(pending):
                break
            pending = waiting
        if missing is not None:
            raise ValidationFailed(missing.message, field="site")
        for name in winners:
            if name == self.ctx.name:
                log.warning("this site (%s) was revoked from the fleet", name)
        return list(winners.values())

    def _about_me(self, entry: SiteEntry) -> bool:
        """Nobody else speaks for this site, except to revoke its current key."""
        mine = self.view.entries.get(self.ctx.name)
        return (
            mine is not None
            and entry.revocation is not None
            and entry.public_key == mine.public_key
            and entry.enrollment == mine.enrollment
        )

    async def revoke(self, name: str) -> SiteEntry:
        entry = self.view.entries.get(name)
        if entry is None:
            raise NotFound(f"site {name} is not in the fleet registry")
        if name == self.ctx.name:
            raise Conflict("a site cannot revoke itself; revoke it from another fleet authority")
        self.require_authority("revoke sites")
        if not entry.active:
            return entry
        revocation = revocation_for(
            entry, by=self.ctx.name, at=self.ctx.clock(), signer=self.ctx.signer.private_key
        )
        revoked = dataclasses.replace(entry, revocation=revocation)
        await self.merge([revoked])
        return revoked

    def require_authority(self, action: str) -> None:
        if not self.self_entry.authority or not self.self_entry.active:
            names = ", ".join(self.authorities()) or "none known"
            raise Forbidden(
                f"{self.ctx.name} is not a fleet authority and cannot {action} "
                f"(authorities: {names})"
            )

    def signed_headers(self, target: str, method: str, path: str, body: bytes) -> dict[str, str]:
        return signed_headers(self.ctx, target=target, method=method, path=path, body=body)

    async def join_with(self, token: EnrollmentToken) -> list[SiteEntry]:
        """Present a one-time token to its issuer; adopt the registry it answers with."""
        if token.site_name and token.site_name != self.ctx.name:
            raise BadRequest(
                f"this enrollment token was made for site {token.site_name}, "
                f"not for {self.ctx.name}"
            )
        path = "/edge/v1/fleet/join"
        body = orjson.dumps(
            {
                "token_id": token.token_id,
                "secret": token.secret,
                "site": self.self_entry.to_json(),
            }
        )
        headers = {
            "content-type": "application/json",
            **self.signed_headers(token.issuer, "POST", path, body),
        }
        self.ctx.keyring.tls_pins.note(  # site-to-site TLS: the issuer is pinned by the token
            token.issuer, token.issuer_url, token.issuer_key, active=True
        )
        try:
            response = await self.ctx.http.post(
                token.issuer_url + path, content=body, headers=headers, timeout=15.0
            )
        except httpx.HTTPError as exc:
            raise Unavailable(f"cannot reach {token.issuer} at {token.issuer_url}: {exc}") from exc
        if response.status_code >= 400:
            raise BadRequest(
                f"{token.issuer} refused the enrollment ({response.status_code}): {response.text}"
            )
        try:
            sites = [SiteEntry.from_json(raw) for raw in response.json()["sites"]]
        except (ValueError, KeyError, TypeError, ValidationFailed) as exc:
            raise BadRequest(f"{token.issuer} answered the enrollment with garbage") from exc
        issuer = next((s for s in sites if s.name == token.issuer), None)
        if issuer is None or issuer.public_key != token.issuer_key:
            raise Unauthorized(
                f"{token.issuer_url} does not hold the key pinned in the enrollment token"
            )
        mine = next((s for s in sites if s.name == self.ctx.name), None)
        enrollment = mine.enrollment if mine is not None else None
        if (
            mine is None
            or enrollment is None
            or mine.public_key != self.public_key
            or enrollment.by != token.issuer
            or enrollment.key != self.public_key
        ):
            raise Unauthorized(f"{token.issuer} did not enroll this site with its key")
        async with self._lock:
            others = [s for s in sites if s.name != self.ctx.name]
            # The issuer is pinned by the token: its view of the fleet's founder is trusted.
            winners = self._check_batch(others, trust_roots=True)
            # The issuer stored this site's entry as sent, with its enrollment: adopt it as is.
            entry = dataclasses.replace(self.self_entry, enrollment=enrollment, rotations=())
            if mine.body() != entry.body():
                raise Unauthorized(f"{token.issuer} answered with another entry for this site")
            check_incoming(
                entry, local=None, known={**self.view.entries, **{w.name: w for w in winners}}
            )
            await self.repo.put([*winners, entry])
            self.view.apply([*winners, entry])
        try:
            await self.feed.accept(response.json().get("revocation_events"))
        except (ValidationFailed, ValueError, TypeError) as exc:
            log.warning("revocation events from %s refused: %s", token.issuer, exc)
        else:
            self.ctx.revocations.note_synced()
        log.info("joined the fleet through %s: %d sites", token.issuer, len(sites))
        return self.entries()

    def note_seen(self, site: str, rtt_ms: float | None) -> None:
        self.view.last_seen[site] = time.monotonic()
        if rtt_ms is not None:
            self.view.rtt.setdefault(self.ctx.name, {})[site] = rtt_ms
