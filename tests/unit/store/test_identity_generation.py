"""The identity store's other contracts: grants are stored once and found by their key,
pairs (memberships, implications) likewise, and every identity write — by a repository,
a mapping rule or the sync receiver — bumps the store's identity generation, which the
token caches trust to know they are stale; a read never does."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from edgefed.store.engine import Store
from edgefed.store.identity import (
    AssignmentRecord,
    DomainRecord,
    GroupRecord,
    IdentityStore,
    ProjectRecord,
    RoleRecord,
    UserRecord,
    identity_generation,
)
from edgefed.store.identity.mappings import MappingRules
from edgefed.store.mappings import MappingRule
from edgefed.store.sync import SyncReceiver


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """A store with the default domain, roles r1 and r2, users u1 and u2, group g1."""
    opened = await Store.open(store_url)
    repos = IdentityStore(opened)
    await repos.domains.create(new=DomainRecord(id="default", name="Default"))
    for role_id in ("r1", "r2"):
        await repos.roles.create(new=RoleRecord(id=role_id, name=role_id))
    for user_id in ("u1", "u2"):
        await repos.users.create(new=UserRecord(id=user_id, name=user_id, domain_id="default"))
    await repos.groups.create(new=GroupRecord(id="g1", name="ops", domain_id="default"))
    try:
        yield opened
    finally:
        await opened.close()


def member_of(role: str, target: str = "p1", actor: str = "u1") -> AssignmentRecord:
    return AssignmentRecord("user", actor, "project", target, role)


async def test_a_grant_is_stored_once_and_found_with_its_origin(store: Store) -> None:
    assignments = IdentityStore(store).assignments
    synced = AssignmentRecord("user", "u1", "project", "p1", "r1", origin="Paris")
    await assignments.grant(assignment=synced)
    await assignments.grant(assignment=member_of("r1"))  # the same key: nothing changes
    assert await assignments.list() == [synced]
    assert await assignments.find(assignment=member_of("r1")) == synced
    assert await assignments.find(assignment=member_of("r2")) is None
    assert await assignments.revoke(assignment=member_of("r1"))
    assert not await assignments.revoke(assignment=member_of("r1"))
    assert await assignments.list() == []


async def test_grants_are_listed_by_actor_target_and_role(store: Store) -> None:
    assignments = IdentityStore(store).assignments
    made = [
        AssignmentRecord("group", "g1", "project", "p1", "r1"),
        AssignmentRecord("user", "u2", "project", "p1", "r1"),
        AssignmentRecord("user", "u1", "project", "p2", "r2"),
        AssignmentRecord("user", "u1", "system", "all", "r1"),
    ]
    for assignment in made:
        await assignments.grant(assignment=assignment)
    # Users before groups, then by actor and target.
    assert await assignments.list() == [made[3], made[2], made[1], made[0]]
    mine = await assignments.list(actors=[("user", "u1"), ("group", "g1")], target_type="project")
    assert mine == [made[2], made[0]]
    assert await assignments.list(actors=[]) == []
    assert await assignments.list(target_type="project", target_id="p1", role_ids=["r1"]) == [
        made[1],
        made[0],
    ]


async def test_a_pair_is_stored_once(store: Store) -> None:
    members = IdentityStore(store).members
    assert await members.add(group_id="g1", user_id="u1")
    assert not await members.add(group_id="g1", user_id="u1")
    assert await members.contains(group_id="g1", user_id="u1")
    assert not await members.contains(group_id="g1", user_id="u2")
    assert await members.all() == [("g1", "u1")]
    assert await members.remove(group_id="g1", user_id="u1")
    assert not await members.remove(group_id="g1", user_id="u1")
    with pytest.raises(TypeError):
        await members.add(group="g1", user_id="u1")
    implications = IdentityStore(store).implications
    assert await implications.add(prior_role_id="r1", implied_role_id="r2")
    assert await implications.all() == [("r1", "r2")]


Write = Callable[[IdentityStore], Awaitable[Any]]
WRITES: list[tuple[str, Write]] = [
    ("create", lambda r: r.projects.create(
        new=ProjectRecord(id="p9", name="x", domain_id="default"))),
    ("update", lambda r: r.domains.update(id="default", changes={"description": "d"})),
    ("delete", lambda r: r.domains.delete(id="nope")),
    ("upsert", lambda r: r.roles.upsert(record=RoleRecord(id="r9", name="r9"))),
    ("delete a user", lambda r: r.users.delete(id="u2")),
    ("conflict", lambda r: r.domains.create(new=DomainRecord(id="d9", name="Default"))),
    ("add member", lambda r: r.members.add(group_id="g1", user_id="u1")),
    ("remove member", lambda r: r.members.remove(group_id="g1", user_id="u1")),
    ("imply", lambda r: r.implications.add(prior_role_id="r1", implied_role_id="r2")),
    ("grant", lambda r: r.assignments.grant(assignment=member_of("r1"))),
    ("revoke", lambda r: r.assignments.revoke(assignment=member_of("r1"))),
    ("shadow", lambda r: r.users.ensure_shadow(
        issuer="Paris", user={"id": "u8", "name": "s", "domain": {"id": "default"}})),
]  # fmt: skip


@pytest.mark.parametrize("write", [w for _, w in WRITES], ids=[n for n, _ in WRITES])
async def test_every_identity_write_bumps_the_generation(store: Store, write: Write) -> None:
    repos = IdentityStore(store)
    before = identity_generation(store)
    try:
        await write(repos)
    except Exception:  # a refused write (a name taken) bumps it too: caches cannot tell
        pass
    assert identity_generation(store) > before


async def test_reads_leave_the_generation_alone(store: Store) -> None:
    repos = IdentityStore(store)
    before = identity_generation(store)
    await repos.users.get(id="u1")
    await repos.groups.of_user("u1")
    await repos.users.in_group("g1")
    await repos.assignments.list()
    await repos.implications.all()
    await repos.projects.list(filters={"enabled": True})
    await MappingRules(store).list()
    assert identity_generation(store) == before


def rule(rule_id: str, source: str, at: float) -> MappingRule:
    return MappingRule(id=rule_id, site="Paris", user_domain="Default", user_name="*",
                       role_id="r1", target_type="system", target_id="all", source=source,
                       created_at=at)  # fmt: skip


async def test_mapping_rules_bump_it_and_a_source_replaces_only_its_own(store: Store) -> None:
    rules = MappingRules(store)
    before = identity_generation(store)
    await rules.create(new=rule("a1", "api", 1.0))
    await rules.replace_source("config", [rule("c1", "config", 2.0), rule("c2", "config", 3.0)])
    await rules.replace_source("config", [rule("c3", "config", 4.0)])
    assert [r.id for r in await rules.list()] == ["a1", "c3"]
    assert await rules.delete(id="a1")
    assert identity_generation(store) == before + 4


async def test_the_sync_receivers_writes_bump_it_too(store: Store) -> None:
    """Rows a sync source pushes are identity writes: a token cache must see them."""
    receiver = SyncReceiver(store, max_blob_bytes=1 << 20, normalise_targets=lambda t: t)
    row = {"id": "p5", "name": "synced", "domain_id": "default", "parent_id": None,
           "description": "", "enabled": True, "tags": [], "extra": {}}  # fmt: skip
    before = identity_generation(store)
    item = {"kind": "project", "key": "p5", "version": 1, "op": "upsert", "row": row}
    outcome = await receiver.apply_batch(
        source="Paris", items=[item], has_blob=lambda _sha: False, now=1.0
    )
    assert [r["status"] for r in outcome.results] == ["applied"]
    assert identity_generation(store) > before
    project = await IdentityStore(store).projects.get(id="p5")
    assert project is not None and project.origin == "Paris"
