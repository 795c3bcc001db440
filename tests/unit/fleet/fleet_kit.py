"""Helpers shared by the fleet service's tests: peers made by hand (a member of a site's
fleet that exists only as a key and its signed entry, reached at ``http://<name>.test``)
and the health state machine's verdict on a peer, from defaults a test overrides."""

from __future__ import annotations

from typing import Any

from edgefed.core.ed25519 import Ed25519PrivateKey
from edgefed.core.fleet import SiteEntry
from edgefed.core.fleet_rules import enrollment_for, signed
from edgefed.core.tokens import public_key_b64
from edgefed.services.fleet.health import PeerHealth, assess_peer
from edgefed.services.sites.registry import Registry
from edgefed.testkit.inprocess import InProcessSite
from edgefed.testkit.inprocess_fleet import ctx_of


async def add_member(site: InProcessSite, name: str, **fields: Any) -> SiteEntry:
    """``name`` joins ``site``'s fleet (enrolled by it), as far as ``site`` can tell."""
    ctx = ctx_of(site)
    key = Ed25519PrivateKey.generate()
    public = public_key_b64(key.public_key())
    enrollment = enrollment_for(
        name, public, by=ctx.name, authority=False, at=1000.0, signer=ctx.signer.private_key
    )
    fields.setdefault("endpoint", f"http://{name.lower()}.test")
    entry = signed(SiteEntry(name=name, public_key=public, enrollment=enrollment, **fields), key)
    await ctx.slots.require(Registry).merge([entry])
    return entry


def assess(**overrides: Any) -> PeerHealth:
    """``assess_peer`` for Denver, heard a second ago at 20 ms, unless ``overrides`` say
    otherwise (timeout 6 s, degraded above 500 ms)."""
    values: dict[str, Any] = {
        "name": "Denver",
        "now": 100.0,
        "last_contact": 99.0,
        "watched_since": 0.0,
        "timeout": 6.0,
        "rtt_ms": 20.0,
        "degraded_rtt_ms": 500.0,
    }
    values.update(overrides)
    return assess_peer(**values)
