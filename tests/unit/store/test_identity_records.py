"""The identity store's records: what goes in comes back as the same record, a name is
taken once per domain (Keystone's 409), a delete takes what hangs on a record with it,
and a shadow user never lands on a user that exists."""

from __future__ import annotations

import pytest

from edgefed.core.errors import Conflict
from edgefed.store.engine import Store
from edgefed.store.identity import (
    AppCredentialRecord,
    AssignmentRecord,
    DomainRecord,
    EndpointRecord,
    GroupRecord,
    IdentityStore,
    ProjectRecord,
    RoleRecord,
    ServiceRecord,
    UserRecord,
)


@pytest.fixture
async def repos(store: Store) -> IdentityStore:
    repos = IdentityStore(store)
    await repos.domains.create(new=DomainRecord(id="default", name="Default"))
    return repos


def grant(actor: str, actor_id: str, target: str, target_id: str, role: str) -> AssignmentRecord:
    return AssignmentRecord(actor, actor_id, target, target_id, role)


async def test_a_record_comes_back_as_it_went_in(repos: IdentityStore) -> None:
    project = ProjectRecord(
        id="p1", name="alpha", domain_id="default", description="first",
        tags=("edge", "eu"), extra={"owner": "ops", "n": 3},
    )  # fmt: skip
    assert await repos.projects.create(new=project) == project
    assert await repos.projects.get(id="p1") == project
    user = UserRecord(id="u1", name="alice", domain_id="default", password_hash="$argon2id$x",
                      password_set_at=12.5, default_project_id="p1")  # fmt: skip
    await repos.users.create(new=user)
    assert await repos.users.get(id="u1") == user
    credential = AppCredentialRecord(
        id="c1", name="ci", user_id="u1", project_id="p1", secret_hash="$argon2id$y",
        role_ids=("r1", "r2"), expires_at=99.0,
    )  # fmt: skip
    await repos.credentials.create(new=credential)
    assert await repos.credentials.get(id="c1") == credential
    assert await repos.projects.get(id="nope") is None


async def test_lists_filter_and_come_by_name(repos: IdentityStore) -> None:
    for pid, name, enabled in (("p1", "zulu", True), ("p2", "alpha", False), ("p3", "mike", True)):
        await repos.projects.create(
            new=ProjectRecord(id=pid, name=name, domain_id="default", enabled=enabled)
        )
    assert [p.name for p in await repos.projects.list()] == ["alpha", "mike", "zulu"]
    enabled = await repos.projects.list(filters={"enabled": True})
    assert [p.id for p in enabled] == ["p3", "p1"]
    assert [p.id for p in await repos.projects.list(filters={"id": {"p1", "p2"}})] == ["p2", "p1"]
    assert await repos.projects.list(filters={"name": "alpha", "domain_id": "other"}) == []


async def test_a_name_is_taken_once_per_domain_in_keystones_words(repos: IdentityStore) -> None:
    await repos.domains.create(new=DomainRecord(id="d2", name="Other"))
    await repos.projects.create(new=ProjectRecord(id="p1", name="alpha", domain_id="default"))
    with pytest.raises(Conflict) as taken:
        await repos.projects.create(new=ProjectRecord(id="p2", name="alpha", domain_id="default"))
    assert str(taken.value) == (
        "Conflict occurred attempting to store project - "
        "Duplicate entry found with name alpha at domain ID default."
    )
    # The same name in another domain is another project.
    await repos.projects.create(new=ProjectRecord(id="p3", name="alpha", domain_id="d2"))
    await repos.roles.create(new=RoleRecord(id="r1", name="ops"))
    with pytest.raises(Conflict, match="store role - Duplicate entry found with name ops."):
        await repos.roles.create(new=RoleRecord(id="r2", name="ops"))
    await repos.projects.create(new=ProjectRecord(id="p4", name="beta", domain_id="d2"))
    with pytest.raises(Conflict, match="store project - Duplicate entry found with name alpha"):
        await repos.projects.update(id="p4", changes={"name": "alpha"})


async def test_an_update_sets_fields_and_answers_the_record_after(repos: IdentityStore) -> None:
    await repos.groups.create(new=GroupRecord(id="g1", name="ops", domain_id="default"))
    after = await repos.groups.update(
        id="g1", changes={"description": "on call", "extra": {"pager": "yes"}}
    )
    assert after == GroupRecord(
        id="g1", name="ops", domain_id="default", description="on call", extra={"pager": "yes"}
    )
    assert await repos.groups.update(id="gone", changes={"description": "x"}) is None


async def test_upsert_inserts_then_replaces_by_id(repos: IdentityStore) -> None:
    synced = RoleRecord(id="r1", name="synced", origin="Paris")
    await repos.roles.upsert(record=synced)
    assert await repos.roles.get(id="r1") == synced
    await repos.roles.upsert(record=RoleRecord(id="r1", name="renamed", origin="Paris"))
    assert [r.name for r in await repos.roles.list()] == ["renamed"]


async def test_deleting_a_user_or_a_group_takes_its_grants_and_memberships(
    repos: IdentityStore,
) -> None:
    await repos.projects.create(new=ProjectRecord(id="p1", name="alpha", domain_id="default"))
    await repos.roles.create(new=RoleRecord(id="r1", name="member"))
    for uid in ("u1", "u2"):
        await repos.users.create(new=UserRecord(id=uid, name=uid, domain_id="default"))
    await repos.groups.create(new=GroupRecord(id="g1", name="ops", domain_id="default"))
    for uid in ("u1", "u2"):
        await repos.members.add(group_id="g1", user_id=uid)
        await repos.assignments.grant(assignment=grant("user", uid, "project", "p1", "r1"))
    await repos.assignments.grant(assignment=grant("group", "g1", "project", "p1", "r1"))

    assert await repos.users.delete(id="u1")
    held = await repos.assignments.list()
    assert {(a.actor_type, a.actor_id) for a in held} == {("user", "u2"), ("group", "g1")}
    assert [u.id for u in await repos.users.in_group("g1")] == ["u2"]

    assert await repos.groups.delete(id="g1")
    assert [(a.actor_type, a.actor_id) for a in await repos.assignments.list()] == [("user", "u2")]
    assert await repos.groups.of_user("u2") == []
    assert not await repos.groups.delete(id="g1")


async def test_deleting_a_project_takes_the_grants_on_it_only(repos: IdentityStore) -> None:
    await repos.roles.create(new=RoleRecord(id="r1", name="member"))
    await repos.users.create(new=UserRecord(id="u1", name="alice", domain_id="default"))
    for pid in ("p1", "p2"):
        await repos.projects.create(new=ProjectRecord(id=pid, name=pid, domain_id="default"))
        await repos.assignments.grant(assignment=grant("user", "u1", "project", pid, "r1"))
    await repos.assignments.grant(assignment=grant("user", "u1", "domain", "p1", "r1"))
    assert await repos.projects.delete(id="p1")
    held = await repos.assignments.list()
    assert sorted((a.target_type, a.target_id) for a in held) == [
        ("domain", "p1"),
        ("project", "p2"),
    ]


async def test_deleting_a_role_takes_its_grants_and_implications(repos: IdentityStore) -> None:
    for rid in ("r1", "r2", "r3"):
        await repos.roles.create(new=RoleRecord(id=rid, name=rid))
    await repos.implications.add(prior_role_id="r1", implied_role_id="r2")
    await repos.implications.add(prior_role_id="r2", implied_role_id="r3")
    await repos.assignments.grant(assignment=grant("user", "u1", "system", "all", "r2"))
    await repos.assignments.grant(assignment=grant("user", "u1", "system", "all", "r3"))
    assert await repos.roles.delete(id="r2")
    assert await repos.implications.all() == []
    assert [a.role_id for a in await repos.assignments.list()] == ["r3"]


async def test_deleting_a_service_takes_its_endpoints(repos: IdentityStore) -> None:
    for sid in ("s1", "s2"):
        await repos.services.create(new=ServiceRecord(id=sid, type=f"t-{sid}"))
        await repos.endpoints.create(
            new=EndpointRecord(id=f"e-{sid}", service_id=sid, interface="public", url="http://x")
        )
    assert await repos.services.delete(id="s1")
    assert [e.id for e in await repos.endpoints.list()] == ["e-s2"]


async def test_members_and_groups_are_read_by_name(repos: IdentityStore) -> None:
    for uid, name in (("u1", "zoe"), ("u2", "adam")):
        await repos.users.create(new=UserRecord(id=uid, name=name, domain_id="default"))
    for gid, name in (("g1", "web"), ("g2", "db")):
        await repos.groups.create(new=GroupRecord(id=gid, name=name, domain_id="default"))
        for uid in ("u1", "u2"):
            await repos.members.add(group_id=gid, user_id=uid)
    assert [u.name for u in await repos.users.in_group("g1")] == ["adam", "zoe"]
    assert [g.name for g in await repos.groups.of_user("u1")] == ["db", "web"]
    assert sorted(await repos.members.group_ids_of("u2")) == ["g1", "g2"]


SHADOW = {"id": "u9", "name": "alice", "domain": {"id": "default", "name": "Default"}}


async def test_a_shadow_user_is_made_once_and_never_over_a_user(repos: IdentityStore) -> None:
    assert await repos.users.ensure_shadow(issuer="Paris", user=SHADOW)
    shadow = await repos.users.get(id="u9")
    assert shadow is not None
    assert (shadow.origin, shadow.password_hash, shadow.extra) == (
        "Paris",
        None,
        {"federated_from": "Paris"},
    )
    assert not await repos.users.ensure_shadow(issuer="Berlin", user=SHADOW)  # the id is taken
    other_id = {**SHADOW, "id": "u10"}
    assert not await repos.users.ensure_shadow(issuer="Paris", user=other_id)  # the name is
    elsewhere = {**SHADOW, "id": "u11", "domain": {"id": "nowhere"}}
    assert not await repos.users.ensure_shadow(issuer="Paris", user=elsewhere)
    assert [u.id for u in await repos.users.list()] == ["u9"]
