"""Gossip digests: what the wire may carry, and what a digest makes a site give or want."""

from __future__ import annotations

import dataclasses

import pytest
from sites_kit import Member

from edgefed.core.ed25519 import Ed25519PrivateKey
from edgefed.core.fleet import MAX_VERSION, SiteEntry
from edgefed.core.fleet_rules import revocation_for
from edgefed.core.revocation import MAX_SEQ
from edgefed.services.sites.gossip import MAX_DIGEST, diff, digest_of, parse_digest
from edgefed.services.sites.revocations import parse_digest as parse_revocation_digest

FOUNDER = Ed25519PrivateKey.generate()


def entry(name: str, *, at: float = 100.0, version: int = 1, revoked: bool = False) -> SiteEntry:
    e = Member(name).entry(by="Berlin", by_key=FOUNDER, at=at, version=version)
    if revoked:
        revocation = revocation_for(e, by="Berlin", at=at + 1, signer=FOUNDER)
        e = dataclasses.replace(e, revocation=revocation)
    return e


def test_a_digest_reads_names_to_enrollment_time_revoked_and_version() -> None:
    digest = parse_digest({"Berlin": [100, False, 3], "Paris": [1.5, True, 0]})
    assert digest == {"Berlin": (100.0, False, 3), "Paris": (1.5, True, 0)}
    assert isinstance(digest["Berlin"][0], float)
    assert parse_digest({}) == {}


@pytest.mark.parametrize(
    "value",
    [
        "new",
        [100.0, False],
        [100.0, False, 1, 2],
        [True, False, 1],  # a boolean is no time
        ["100", False, 1],
        [float("nan"), False, 1],
        [float("inf"), False, 1],
        [100.0, 0, 1],  # revoked must be a boolean
        [100.0, "false", 1],
        [100.0, False, True],  # a boolean is no version
        [100.0, False, 1.0],
        [100.0, False, -1],
        [100.0, False, MAX_VERSION + 1],
        {"at": 100.0},
    ],
)
def test_a_malformed_digest_entry_is_refused_naming_it(value: object) -> None:
    with pytest.raises(ValueError, match="digest entry 'Paris'"):
        parse_digest({"Berlin": [1.0, False, 1], "Paris": value})


@pytest.mark.parametrize("raw", [None, [], "digest", 3])
def test_a_digest_is_an_object(raw: object) -> None:
    with pytest.raises(ValueError, match="must be an object"):
        parse_digest(raw)


def test_a_digest_is_bounded() -> None:
    with pytest.raises(ValueError, match="must be an object"):
        parse_digest({f"S{i}": [1.0, False, 1] for i in range(MAX_DIGEST + 1)})


def test_a_refusal_does_not_echo_a_huge_name() -> None:
    with pytest.raises(ValueError) as info:
        parse_digest({"x" * 100_000: "bad"})
    assert len(str(info.value)) < 200


def test_the_revocation_digest_reads_origins_to_watermarks() -> None:
    assert parse_revocation_digest(None) == {}
    assert parse_revocation_digest({"Berlin": 0, "Paris": MAX_SEQ}) == {
        "Berlin": 0,
        "Paris": MAX_SEQ,
    }
    for bad in (True, -1, MAX_SEQ + 1, 1.0, "3", None):
        with pytest.raises(ValueError, match="'Paris' must be a number"):
            parse_revocation_digest({"Paris": bad})
    with pytest.raises(ValueError, match="must be an object"):
        parse_revocation_digest([["Paris", 1]])
    with pytest.raises(ValueError) as info:
        parse_revocation_digest({"y" * 10_000: "x"})
    assert len(str(info.value)) < 200


def test_agreeing_registries_give_and_want_nothing() -> None:
    mine = [entry("Berlin"), entry("Paris", version=4)]
    assert diff(mine, digest_of(mine)) == ([], [])


def test_a_peer_is_given_what_it_lacks_or_holds_older_and_asked_for_what_it_holds_newer() -> None:
    berlin, paris, lyon = entry("Berlin"), entry("Paris", version=2), entry("Lyon", version=5)
    peer = {
        "Berlin": (100.0, False, 1),  # the same
        "Paris": (100.0, False, 1),  # older: give it
        "Lyon": (100.0, False, 7),  # newer: want it
        "Nice": (100.0, False, 1),  # unknown here: want it
    }
    give, want = diff([berlin, paris, lyon], peer)
    assert [e.name for e in give] == ["Paris"]
    assert sorted(want) == ["Lyon", "Nice"]
    give, _ = diff([berlin, paris, lyon], {})
    assert [e.name for e in give] == ["Berlin", "Paris", "Lyon"]


def test_a_revocation_outranks_any_version_and_a_new_enrollment_outranks_a_revocation() -> None:
    revoked = entry("Paris", version=1, revoked=True)
    # The peer holds Paris active at a far higher version: the revocation still wins.
    give, want = diff([revoked], {"Paris": (100.0, False, MAX_VERSION)})
    assert [e.name for e in give] == ["Paris"] and want == []
    # The peer holds a later enrollment of the name (a new machine): that one wins.
    give, want = diff([revoked], {"Paris": (300.0, False, 1)})
    assert give == [] and want == ["Paris"]
