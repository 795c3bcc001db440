"""Revocation events and mapping rules as the store keeps them.

Revocations: this site numbers its own events from 1 without gaps or repeats (even when
several are made at once), stores another site's events once each, and prunes old
events but never the newest of an origin. Mapping rules: listed oldest first, replaced
per source in one go, and every change makes identity caches stale.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt

import pytest

from edgefed.core.ed25519 import Ed25519PrivateKey
from edgefed.store.engine import Store
from edgefed.store.identity import identity_generation
from edgefed.store.mappings import MappingRepository, MappingRule
from edgefed.store.revocations import RevocationEvent, RevocationRepository

KEY = Ed25519PrivateKey.generate()


def sign(event: RevocationEvent) -> RevocationEvent:
    return event.signed_by(KEY)


async def add_local(repo: RevocationRepository, user: str, *, floor: int = 1) -> RevocationEvent:
    return await repo.add_local(
        RevocationEvent(issued_before=100.0, user_id=user),
        origin="berlin",
        floor=floor,
        now=50.0,
        sign=sign,
    )


async def test_local_events_are_numbered_signed_and_stamped(store: Store) -> None:
    repo = RevocationRepository(store)
    first = await add_local(repo, "u1")
    second = await add_local(repo, "u2", floor=1)

    assert (first.origin, first.seq, first.created_at) == ("berlin", 1, 50.0)
    assert second.seq == 2
    first.verify(KEY.public_key())  # signed after numbering: the number is covered
    with pytest.raises(Exception, match="does not verify"):
        dataclasses.replace(first, seq=7).verify(KEY.public_key())
    assert sorted(await repo.all_since(0.0), key=lambda e: e.seq or 0) == [first, second]


async def test_the_floor_never_exceeds_the_event_number(store: Store) -> None:
    repo = RevocationRepository(store)
    first = await add_local(repo, "u1", floor=5)
    assert first.floor == 1  # nothing older than itself can be alive
    await add_local(repo, "u2")
    third = await add_local(repo, "u3", floor=2)
    assert (third.seq, third.floor) == (3, 2)


async def test_each_origin_is_numbered_on_its_own(store: Store) -> None:
    repo = RevocationRepository(store)
    await add_local(repo, "u1")
    other = await repo.add_local(
        RevocationEvent(issued_before=1.0, user_id="x"),
        origin="paris",
        floor=1,
        now=1.0,
        sign=sign,
    )
    assert other.seq == 1
    assert (await add_local(repo, "u2")).seq == 2


async def test_events_made_at_once_get_distinct_numbers(store: Store) -> None:
    repo = RevocationRepository(store)
    made = await asyncio.gather(*(add_local(repo, f"u{i}") for i in range(8)))
    assert sorted(e.seq or 0 for e in made) == list(range(1, 9))
    assert sorted(e.seq or 0 for e in await repo.all_since(0.0)) == list(range(1, 9))


async def test_foreign_events_are_stored_once_each(store: Store) -> None:
    repo = RevocationRepository(store)
    events = [
        RevocationEvent(issued_before=10.0, user_id=f"u{n}", origin="paris", seq=n, signature="s")
        for n in (1, 2, 3)
    ]
    stored = await repo.add_foreign(events[:2])
    assert [e.seq for e in stored] == [1, 2]
    # Gossip brings the same events again, with a new one: only the new one is stored.
    stored = await repo.add_foreign(events)
    assert [e.seq for e in stored] == [3]
    assert await repo.add_foreign(events) == []
    assert await repo.add_foreign([]) == []
    assert sorted(e.seq or 0 for e in await repo.all_since(0.0)) == [1, 2, 3]


async def test_a_foreign_number_does_not_collide_with_this_sites(store: Store) -> None:
    repo = RevocationRepository(store)
    await add_local(repo, "mine")
    theirs = RevocationEvent(issued_before=10.0, user_id="x", origin="paris", seq=1, signature="s")
    assert await repo.add_foreign([theirs]) == [theirs]
    assert {(e.origin, e.seq) for e in await repo.all_since(0.0)} == {("berlin", 1), ("paris", 1)}


async def test_all_since_selects_by_issue_time(store: Store) -> None:
    repo = RevocationRepository(store)
    for when in (5.0, 10.0, 15.0):
        await repo.add(RevocationEvent(issued_before=when, audit_id=f"a{when:g}"))
    assert sorted(e.audit_id or "" for e in await repo.all_since(10.0)) == ["a10", "a15"]
    assert await repo.all_since(16.0) == []


async def test_prune_keeps_recent_events_and_the_newest_of_each_origin(store: Store) -> None:
    repo = RevocationRepository(store)
    old = dt.datetime.fromtimestamp(1000.0, dt.UTC)
    for n, when in enumerate((100.0, 200.0, 2000.0), start=1):
        await repo.add(RevocationEvent(issued_before=when, user_id=f"b{n}", origin="berlin", seq=n))
    for n in (1, 2):  # every event of paris is old
        await repo.add(
            RevocationEvent(issued_before=50.0 * n, user_id=f"p{n}", origin="paris", seq=n)
        )

    await repo.prune(old)

    kept = {(e.origin, e.seq) for e in await repo.all_since(0.0)}
    # berlin's old events go (its newest, seq 3, is recent); paris keeps its newest, so
    # the next number it would be told about is still known to be new.
    assert kept == {("berlin", 3), ("paris", 2)}


async def test_numbering_goes_on_after_prune_and_reopen(store_url: str) -> None:
    first = await Store.open(store_url)
    try:
        repo = RevocationRepository(first)
        for n in range(3):
            await add_local(repo, f"u{n}")
        await repo.prune(dt.datetime.fromtimestamp(1e9, dt.UTC))  # all are old
        assert [e.seq for e in await repo.all_since(0.0)] == [3]
    finally:
        await first.close()
    second = await Store.open(store_url)
    try:
        assert (await add_local(RevocationRepository(second), "next")).seq == 4
    finally:
        await second.close()


# -- mapping rules ------------------------------------------------------------------


def rule(rule_id: str, *, source: str = "api", created_at: float = 0.0) -> MappingRule:
    return MappingRule(
        id=rule_id,
        site="paris",
        user_domain="Default",
        user_name="*",
        role_id="member",
        target_type="project",
        target_id="p1",
        source=source,
        created_at=created_at,
    )


async def test_rules_are_listed_oldest_first_as_they_were_added(store: Store) -> None:
    repo = MappingRepository(store)
    await repo.add(rule("b", created_at=2.0))
    await repo.add(rule("a", created_at=1.0))
    await repo.add(rule("c", created_at=3.0))
    found = await repo.all()
    assert [r.id for r in found] == ["a", "b", "c"]
    assert found[0] == rule("a", created_at=1.0)


async def test_deleting_a_rule_says_whether_there_was_one(store: Store) -> None:
    repo = MappingRepository(store)
    await repo.add(rule("a"))
    assert await repo.delete("a") is True
    assert await repo.delete("a") is False
    assert await repo.all() == []


async def test_replacing_a_source_leaves_the_other_sources_rules(store: Store) -> None:
    repo = MappingRepository(store)
    await repo.add(rule("api-1", created_at=1.0))
    await repo.replace_source("config", [rule("old", source="config", created_at=2.0)])
    await repo.replace_source(
        "config",
        [
            rule("new-1", source="config", created_at=3.0),
            rule("new-2", source="config", created_at=4.0),
        ],
    )
    assert [r.id for r in await repo.all()] == ["api-1", "new-1", "new-2"]
    await repo.replace_source("config", [])
    assert [r.id for r in await repo.all()] == ["api-1"]


async def test_a_replacement_that_fails_keeps_the_rules_it_had(store: Store) -> None:
    repo = MappingRepository(store)
    await repo.replace_source("config", [rule("kept", source="config")])
    await repo.add(rule("clash"))
    with pytest.raises(Exception, match="(?i)unique|duplicate"):  # the id clashes with api's
        await repo.replace_source(
            "config", [rule("fresh", source="config"), rule("clash", source="config")]
        )
    assert sorted(r.id for r in await repo.all()) == ["clash", "kept"]


async def test_every_rule_change_makes_identity_caches_stale(store: Store) -> None:
    repo = MappingRepository(store)
    seen = [identity_generation(store)]
    await repo.add(rule("a"))
    seen.append(identity_generation(store))
    await repo.replace_source("config", [])
    seen.append(identity_generation(store))
    await repo.delete("a")
    seen.append(identity_generation(store))
    assert seen == sorted(set(seen))  # strictly increasing: each change is seen
