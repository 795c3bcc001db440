"""What an authority signed stops counting once it is revoked, and the rules say so
apart from a forgery (RevokedAuthority), so a registry can leave such an entry out of
a gossip batch without refusing the rest of it."""

from __future__ import annotations

import dataclasses

import pytest

from edgefed.core.ed25519 import Ed25519PrivateKey
from edgefed.core.errors import ValidationFailed
from edgefed.core.fleet import RevokedAuthority, SiteEntry
from edgefed.core.fleet_rules import check_incoming, enrollment_for, revocation_for, signed
from edgefed.core.tokens import public_key_b64

KEYS = {n: Ed25519PrivateKey.generate() for n in ("Berlin", "Hub", "Lyon", "Paris")}


def entry(name: str, *, by: str, authority: bool = False) -> SiteEntry:
    key = public_key_b64(KEYS[name].public_key())
    enrollment = enrollment_for(name, key, by=by, authority=authority, at=100.0, signer=KEYS[by])
    return signed(
        SiteEntry(
            name=name, endpoint=f"http://{name.lower()}.test", public_key=key, enrollment=enrollment
        ),
        KEYS[name],
    )


def revoked(target: SiteEntry, *, by: str) -> SiteEntry:
    revocation = revocation_for(target, by=by, at=200.0, signer=KEYS[by])
    return dataclasses.replace(target, revocation=revocation)


BERLIN = entry("Berlin", by="Berlin", authority=True)
HUB = entry("Hub", by="Berlin", authority=True)


def test_an_enrollment_by_a_revoked_authority_is_told_apart() -> None:
    known = {"Berlin": BERLIN, "Hub": revoked(HUB, by="Berlin")}
    with pytest.raises(RevokedAuthority, match="enrolled by Hub, which is not an active"):
        check_incoming(entry("Lyon", by="Hub"), local=None, known=known)
    # While Hub was active, the same entry was good.
    assert check_incoming(entry("Lyon", by="Hub"), local=None, known={"Berlin": BERLIN, "Hub": HUB})


def test_a_revocation_by_a_revoked_authority_is_told_apart() -> None:
    paris = entry("Paris", by="Berlin")
    known = {"Berlin": BERLIN, "Hub": revoked(HUB, by="Berlin"), "Paris": paris}
    with pytest.raises(RevokedAuthority, match="revoked by Hub, which is revoked itself"):
        check_incoming(revoked(paris, by="Hub"), local=paris, known=known)


def test_a_member_that_was_never_an_authority_is_still_a_plain_refusal() -> None:
    lyon = entry("Lyon", by="Berlin")
    for known_lyon in (lyon, revoked(lyon, by="Berlin")):
        known = {"Berlin": BERLIN, "Lyon": known_lyon}
        with pytest.raises(ValidationFailed) as info:
            check_incoming(entry("Paris", by="Lyon"), local=None, known=known)
        assert not isinstance(info.value, RevokedAuthority)
