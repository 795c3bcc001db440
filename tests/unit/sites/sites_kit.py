"""Fleet members made by hand for the sites service's tests.

A ``Member`` holds a key and signs its own registry entry; its enrollment is signed by
whichever authority the test names (an in-process site's key, or another ``Member``),
so a test can hand a registry exactly the batch it wants: dependencies between
entries, forgeries, revocations.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from edgefed.api.context import SiteContext
from edgefed.core.ed25519 import Ed25519PrivateKey
from edgefed.core.fleet import SiteEntry
from edgefed.core.fleet_rules import enrollment_for, revocation_for, signed
from edgefed.core.tokens import public_key_b64
from edgefed.services.sites.registry import Registry
from edgefed.testkit.inprocess import InProcessSite
from edgefed.testkit.inprocess_fleet import ctx_of


class Member:
    """A site that exists only as a key and the entries it signs."""

    def __init__(self, name: str, *, key: Ed25519PrivateKey | None = None) -> None:
        self.name = name
        self.key = key or Ed25519PrivateKey.generate()

    @property
    def public_key(self) -> str:
        return public_key_b64(self.key.public_key())

    def entry(
        self,
        *,
        by: str,
        by_key: Ed25519PrivateKey,
        authority: bool = False,
        at: float = 1000.0,
        **fields: Any,
    ) -> SiteEntry:
        """Its entry, signed by itself, enrolled by ``by`` (signing with ``by_key``)."""
        enrollment = enrollment_for(
            self.name, self.public_key, by=by, authority=authority, at=at, signer=by_key
        )
        entry = SiteEntry(
            name=self.name,
            endpoint=fields.pop("endpoint", f"http://{self.name.lower()}.test"),
            public_key=self.public_key,
            enrollment=enrollment,
            **fields,
        )
        return signed(entry, self.key)

    def update(self, entry: SiteEntry, **changes: Any) -> SiteEntry:
        """A newer statement of its own (signed again)."""
        return signed(dataclasses.replace(entry, **changes), self.key)


def enrolled_by(site: InProcessSite, member: Member, **kwargs: Any) -> SiteEntry:
    """``member``'s entry, enrolled by the in-process site (a fleet founder)."""
    ctx = ctx_of(site)
    return member.entry(by=ctx.name, by_key=ctx.signer.private_key, **kwargs)


def revoked_by(
    site: InProcessSite | SiteContext, entry: SiteEntry, *, at: float = 2000.0
) -> SiteEntry:
    """``entry`` revoked by the in-process site (an authority)."""
    ctx = site if isinstance(site, SiteContext) else ctx_of(site)
    revocation = revocation_for(entry, by=ctx.name, at=at, signer=ctx.signer.private_key)
    return dataclasses.replace(entry, revocation=revocation)


def registry_of(site: InProcessSite) -> Registry:
    return ctx_of(site).slots.require(Registry)
