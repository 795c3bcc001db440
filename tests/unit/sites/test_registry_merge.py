"""Merging entries into a site's registry: a batch is taken whole or not at all, entries
in it may depend on each other, and what is taken is stored before it is used."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest
from sites_kit import Member, enrolled_by, registry_of, revoked_by

from edgefed.core.errors import ValidationFailed
from edgefed.core.fleet_rules import revocation_for
from edgefed.services.sites.registry import Registry
from edgefed.testkit.inprocess import InProcessSite
from edgefed.testkit.inprocess_fleet import ctx_of


async def stored_names(registry: Registry) -> list[str]:
    return sorted(e.name for e in await registry.repo.all())


async def test_entries_enrolled_by_an_authority_in_the_same_batch_are_taken_in_any_order(
    site: InProcessSite,
) -> None:
    registry = registry_of(site)
    hub, lyon, nice = Member("Hub"), Member("Lyon"), Member("Nice")
    hub_entry = enrolled_by(site, hub, authority=True)
    # Lyon is enrolled by Hub, Nice by Lyon (an authority Hub made): each names an
    # authority that only arrives later in the batch.
    lyon_entry = lyon.entry(by="Hub", by_key=hub.key, authority=True)
    nice_entry = nice.entry(by="Lyon", by_key=lyon.key)
    winners = await registry.merge([nice_entry, lyon_entry, hub_entry])
    assert sorted(e.name for e in winners) == ["Hub", "Lyon", "Nice"]
    assert registry.view.active("Nice")
    assert await stored_names(registry) == ["Berlin", "Hub", "Lyon", "Nice"]
    assert registry.authorities() == ["Berlin", "Hub", "Lyon"]


async def test_an_entry_whose_authority_never_arrives_refuses_the_whole_batch(
    site: InProcessSite,
) -> None:
    registry = registry_of(site)
    stranger = Member("Stranger")
    good = enrolled_by(site, Member("Lyon"))
    orphan = Member("Orphan").entry(by="Stranger", by_key=stranger.key)
    with pytest.raises(ValidationFailed, match="enrolled by Stranger, unknown here"):
        await registry.merge([good, orphan])
    assert "Lyon" not in registry.view.entries
    assert await stored_names(registry) == ["Berlin"]


async def test_one_forged_entry_and_nothing_of_the_batch_is_stored(site: InProcessSite) -> None:
    registry = registry_of(site)
    good = enrolled_by(site, Member("Lyon"))
    # Nice's entry carrying Lyon's signature: the signature over Nice's body fails.
    forged = dataclasses.replace(enrolled_by(site, Member("Nice")), signature=good.signature)
    with pytest.raises(ValidationFailed, match="site Nice: the signature does not verify"):
        await registry.merge([good, forged])
    assert registry.view.entries.keys() == {"Berlin"}
    assert await stored_names(registry) == ["Berlin"]


async def test_a_member_cannot_enroll_even_inside_a_batch_that_enrolls_it(
    site: InProcessSite,
) -> None:
    registry = registry_of(site)
    lyon = Member("Lyon")
    lyon_entry = enrolled_by(site, lyon)  # a member, not an authority
    sybil = Member("Sybil").entry(by="Lyon", by_key=lyon.key)
    with pytest.raises(ValidationFailed, match="not an active fleet authority"):
        await registry.merge([lyon_entry, sybil])
    assert await stored_names(registry) == ["Berlin"]


async def test_an_older_or_equal_entry_wins_nothing_and_changes_nothing(
    site: InProcessSite,
) -> None:
    registry = registry_of(site)
    lyon = Member("Lyon")
    v1 = enrolled_by(site, lyon)
    v2 = lyon.update(v1, version=2, labels={"tier": "edge"})
    assert [e.version for e in await registry.merge([v2])] == [2]
    assert await registry.merge([v1]) == []
    assert await registry.merge([v2]) == []
    assert registry.view.entries["Lyon"].labels == {"tier": "edge"}
    [stored] = [e for e in await registry.repo.all() if e.name == "Lyon"]
    assert stored.version == 2


async def test_nobody_else_speaks_for_this_site_except_to_revoke_its_key(
    site: InProcessSite, caplog: pytest.LogCaptureFixture
) -> None:
    registry = registry_of(site)
    mine = registry.self_entry
    hub = Member("Hub")
    await registry.merge([enrolled_by(site, hub, authority=True)])
    # An entry for "Berlin" under another key, enrolled by Hub: not about this site's
    # key, so it is ignored (not merged, not an error).
    impostor = Member("Berlin").entry(by="Hub", by_key=hub.key, at=5e9)
    assert await registry.merge([impostor]) == []
    assert registry.self_entry == mine
    # Hub, another authority, revokes this site's current key: that is taken, loudly.
    revocation = revocation_for(mine, by="Hub", at=3000.0, signer=hub.key)
    with caplog.at_level(logging.WARNING, logger="edgefed.fleet"):
        [winner] = await registry.merge([dataclasses.replace(mine, revocation=revocation)])
    assert winner.name == "Berlin" and not winner.active
    assert "was revoked from the fleet" in caplog.text
    assert not registry.self_entry.active


async def test_what_a_merge_took_is_there_after_a_restart(tmp_path: Path) -> None:
    from edgefed.testkit.inprocess import run_site, site_settings

    settings = site_settings(tmp_path / "berlin")
    async with run_site(settings) as site:
        hub = Member("Hub")
        hub_entry = enrolled_by(site, hub, authority=True)
        await registry_of(site).merge([hub_entry, hub.entry(by="Hub", by_key=hub.key)])
    async with run_site(settings) as again:
        registry = registry_of(again)
        assert registry.view.entries["Hub"] == hub_entry
        # The view feeds the keyring: Hub's tokens are checked with its pinned key.
        assert ctx_of(again).keyring.lookup("Hub") is not None
        assert ctx_of(again).peers["Hub"] == "http://hub.test"


async def test_a_revoked_authoritys_old_enrollments_do_not_block_its_revocation(
    site: InProcessSite,
) -> None:
    """A site that knew Hub (an authority) but not Lyon (which Hub enrolled) hears, in
    one gossip answer, that Hub was revoked and that Lyon exists. Lyon cannot be taken
    (its authority is revoked now), but Hub's revocation must be: otherwise this site
    never learns it from any peer that holds Lyon."""
    registry = registry_of(site)
    hub, lyon = Member("Hub"), Member("Lyon")
    hub_entry = enrolled_by(site, hub, authority=True)
    await registry.merge([hub_entry])
    lyon_entry = lyon.entry(by="Hub", by_key=hub.key)
    revoked_hub = revoked_by(site, hub_entry)
    # Answers list entries by name: Hub before Lyon.
    winners = await registry.merge([revoked_hub, lyon_entry])
    assert [e.name for e in winners] == ["Hub"]
    assert not registry.view.active("Hub")
    assert "Lyon" not in registry.view.entries
    assert ctx_of(site).keyring.lookup("Hub") is None
    # And a batch holding nothing but such an entry changes nothing, without an error.
    assert await registry.merge([lyon_entry]) == []
