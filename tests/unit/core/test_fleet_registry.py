"""The registry's rules: nobody speaks for another site, authorities enroll and revoke."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from edgefed.core.ed25519 import Ed25519PrivateKey
from edgefed.core.errors import ValidationFailed
from edgefed.core.fleet import MAX_VERSION, MissingAuthority, SiteEntry
from edgefed.core.fleet_rules import (
    check_incoming,
    enrollment_for,
    revocation_for,
    rotation_for,
    signed,
)
from edgefed.core.tokens import public_key_b64


class Site:
    def __init__(self, name: str, *, by: Site | None = None, authority: bool = False) -> None:
        self.name = name
        self.key = Ed25519PrivateKey.generate()
        self.entry = self.enrolled(by=by, authority=authority if by else True, at=100.0)

    @property
    def public_key(self) -> str:
        return public_key_b64(self.key.public_key())

    def enrolled(self, *, by: Site | None, authority: bool, at: float) -> SiteEntry:
        signer = by or self
        enrollment = enrollment_for(
            self.name,
            self.public_key,
            by=signer.name,
            authority=authority,
            at=at,
            signer=signer.key,
        )
        entry = SiteEntry(
            name=self.name,
            endpoint=f"http://{self.name.lower()}.test",
            public_key=self.public_key,
            enrollment=enrollment,
        )
        return signed(entry, self.key)

    def update(self, **changes: Any) -> SiteEntry:
        return signed(dataclasses.replace(self.entry, **changes), self.key)


@pytest.fixture
def fleet() -> tuple[Site, Site, Site]:
    berlin = Site("Berlin")
    denver = Site("Denver", by=berlin)
    paris = Site("Paris", by=berlin)
    return berlin, denver, paris


def known(*sites: Site) -> dict[str, SiteEntry]:
    return {s.name: s.entry for s in sites}


def test_a_site_updates_its_own_entry(fleet: tuple[Site, Site, Site]) -> None:
    berlin, denver, paris = fleet
    newer = denver.update(version=2, endpoint="http://denver.new.test")
    assert check_incoming(newer, local=denver.entry, known=known(berlin, paris))
    assert not check_incoming(denver.entry, local=newer, known=known(berlin, paris))


def test_nobody_can_rewrite_another_sites_entry(fleet: tuple[Site, Site, Site]) -> None:
    berlin, denver, paris = fleet
    # Paris points Denver's endpoint at itself, with a higher version, signed by Paris.
    forged = signed(
        dataclasses.replace(denver.entry, version=99, endpoint="http://paris.test"), denver.key
    )
    forged = dataclasses.replace(forged, signature=paris.update(version=99).signature)
    with pytest.raises(ValidationFailed, match="signature does not verify"):
        check_incoming(forged, local=denver.entry, known=known(berlin, paris))
    # Nor can it swap Denver's key for its own.
    hijack = signed(dataclasses.replace(denver.entry, version=99, public_key=paris.public_key),
                    paris.key)  # fmt: skip
    with pytest.raises(ValidationFailed, match="no rotation signed by its pinned key"):
        check_incoming(hijack, local=denver.entry, known=known(berlin, paris))


def test_only_an_authority_enrolls(fleet: tuple[Site, Site, Site]) -> None:
    berlin, denver, paris = fleet
    sybil = Site("Sybil", by=paris)  # Paris is a member, not an authority
    with pytest.raises(ValidationFailed, match="not an active fleet authority"):
        check_incoming(sybil.entry, local=None, known=known(berlin, denver, paris))
    stranger = Site("Stranger", by=Site("Elsewhere"))
    with pytest.raises(MissingAuthority):
        check_incoming(stranger.entry, local=None, known=known(berlin, denver, paris))
    founder = Site("Rogue")  # enrolls itself
    with pytest.raises(ValidationFailed, match="enrolled itself"):
        check_incoming(founder.entry, local=None, known=known(berlin))
    assert check_incoming(founder.entry, local=None, known={}, trust_roots=True)
    lyon = Site("Lyon", by=berlin)
    assert check_incoming(lyon.entry, local=None, known=known(berlin))


def test_a_member_cannot_make_itself_an_authority(fleet: tuple[Site, Site, Site]) -> None:
    berlin, denver, paris = fleet
    assert denver.entry.enrollment is not None
    promoted = dataclasses.replace(denver.entry.enrollment, authority=True)
    forged = denver.update(version=2, enrollment=promoted)
    with pytest.raises(ValidationFailed, match="enrollment of Denver"):
        check_incoming(forged, local=denver.entry, known=known(berlin, paris))


def test_revocation_is_an_authoritys_and_final(fleet: tuple[Site, Site, Site]) -> None:
    berlin, denver, paris = fleet
    by_paris = dataclasses.replace(
        denver.entry,
        revocation=revocation_for(denver.entry, by="Paris", at=200.0, signer=paris.key),
    )
    with pytest.raises(ValidationFailed, match="not another active fleet authority"):
        check_incoming(by_paris, local=denver.entry, known=known(berlin, paris))
    revoked = dataclasses.replace(
        denver.entry,
        revocation=revocation_for(denver.entry, by="Berlin", at=200.0, signer=berlin.key),
    )
    assert check_incoming(revoked, local=denver.entry, known=known(berlin, paris))
    # Whatever version the revoked site publishes afterwards, it stays revoked.
    comeback = denver.update(version=MAX_VERSION)
    assert not check_incoming(comeback, local=revoked, known=known(berlin, paris))
    # Re-enrolled with the same key: refused; with a new key, by an authority: back.
    same_key = denver.enrolled(by=berlin, authority=False, at=300.0)
    with pytest.raises(ValidationFailed, match="a new enrollment needs a new key"):
        check_incoming(same_key, local=revoked, known=known(berlin, paris))
    fresh = Site("Denver", by=berlin)
    fresh.entry = fresh.enrolled(by=berlin, authority=False, at=300.0)
    assert check_incoming(fresh.entry, local=revoked, known=known(berlin, paris))
    old_enrollment = Site("Denver", by=berlin)  # enrolled at 100, before the revocation
    assert not check_incoming(old_enrollment.entry, local=revoked, known=known(berlin, paris))
    backdated = Site("Denver", by=berlin)
    backdated.entry = backdated.enrolled(by=berlin, authority=False, at=150.0)
    with pytest.raises(ValidationFailed, match="was revoked"):
        check_incoming(backdated.entry, local=revoked, known=known(berlin, paris))


def test_a_rotation_is_signed_by_the_pinned_key(fleet: tuple[Site, Site, Site]) -> None:
    berlin, denver, paris = fleet
    new = Ed25519PrivateKey.generate()
    new_key = public_key_b64(new.public_key())
    rotation = rotation_for("Denver", old=denver.key, new_key=new_key, at=150.0)
    rotated = signed(
        dataclasses.replace(denver.entry, public_key=new_key, version=2, rotations=(rotation,)),
        new,
    )
    assert check_incoming(rotated, local=denver.entry, known=known(berlin, paris))
    # A site that never saw Denver checks the whole chain from the enrolled key.
    assert check_incoming(rotated, local=None, known=known(berlin, paris))
    stolen = rotation_for("Denver", old=paris.key, new_key=new_key, at=150.0)
    forged = signed(
        dataclasses.replace(
            denver.entry,
            public_key=new_key,
            version=2,
            rotations=(dataclasses.replace(stolen, old_key=denver.public_key),),
        ),
        new,
    )
    with pytest.raises(ValidationFailed, match="key rotation of Denver"):
        check_incoming(forged, local=denver.entry, known=known(berlin, paris))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"public_key": "not-a-key"}, "public_key"),
        ({"public_key": "A" * 43 + "="}, "public_key"),
        ({"version": 2**63 - 1}, "version"),
        ({"version": True}, "version"),
        ({"version": 0}, "version"),
        ({"name": "Berlin\n"}, "invalid site name"),
        ({"endpoint": "ftp://berlin.test"}, "endpoint"),
        ({"endpoint": "http://user:pw@berlin.test"}, "endpoint"),
        ({"endpoint": "http://berlin.test:99999"}, "port"),
        ({"location": {"lat": float("nan")}}, "lat"),
        ({"location": {"lon": 500}}, "lon"),
        ({"labels": {f"k{i}": "v" for i in range(100)}}, "labels"),
        ({"labels": {"tier": 5}}, "labels"),
        ({"updated_at": float("inf")}, "updated_at"),
        ({"status": "revoked"}, "status"),
        ({"enrollment": {"by": "Berlin", "key": "x", "at": 1, "signature": "y"}}, "enrollment"),
        ({"rotations": [{}] * 40}, "rotations"),
    ],
)
def test_every_field_is_checked(
    fleet: tuple[Site, Site, Site], change: dict[str, Any], message: str
) -> None:
    raw = {**fleet[1].entry.to_json(), **change}
    with pytest.raises(ValidationFailed, match=message):
        SiteEntry.from_json(raw)


def test_entries_round_trip(fleet: tuple[Site, Site, Site]) -> None:
    berlin, denver, _ = fleet
    revoked = dataclasses.replace(
        denver.entry,
        revocation=revocation_for(denver.entry, by="Berlin", at=200.0, signer=berlin.key),
    )
    for entry in (berlin.entry, denver.entry, revoked):
        assert SiteEntry.from_json(entry.to_json()) == entry
