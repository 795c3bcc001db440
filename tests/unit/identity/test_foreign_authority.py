"""What a token from another fleet site may do here, decided by this site alone: roles
from the mapping rules its operator set (by site, domain, user and target), roles of
users it received from that site, none for a user it owns itself (that token acts under
an id of its own), none on a target missing or disabled; a user disabled here is
refused; a mapped user is recorded as a shadow. Claims are built by hand: the signature
was checked before this point."""

from __future__ import annotations

from typing import Any

import pytest
from identity_helpers import V3, create

from edgefed.core.errors import Unauthorized
from edgefed.core.ids import predictable_id
from edgefed.services.identity.authority import foreign_user_id
from edgefed.testkit.inprocess import InProcessSite

ALICE = predictable_id("user", "alice", domain_id="default")


def claims(
    *,
    issuer: str = "Paris",
    user_id: str = ALICE,
    name: str = "alice",
    user_domain: dict[str, str] | None = None,
    **scope: Any,
) -> dict[str, Any]:
    return {
        "iss": issuer,
        "user": {
            "id": user_id,
            "name": name,
            "domain": user_domain or {"id": "default", "name": "Default"},
        },
        "roles": [{"name": "admin"}],  # claimed, never believed
        **scope,
    }


async def grant_of(site: InProcessSite, **kw: Any) -> tuple[str, list[str]]:
    grant = await site.app.state.ctx.authority.foreign_grant(claims(**kw))
    return grant.user_id, sorted(grant.roles)


async def add_rule(at: InProcessSite, headers: dict[str, str], **rule: Any) -> dict[str, Any]:
    r = await at.client.post(f"{V3}/OS-EDGE/mappings", json={"mapping": rule}, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()["mapping"]


@pytest.fixture
async def research(site: InProcessSite, admin_headers: dict[str, str]) -> str:
    return str((await create(site.client, admin_headers, "project", name="research"))["id"])


async def test_without_a_rule_a_foreign_user_gets_nothing_and_leaves_no_trace(
    site: InProcessSite, admin_headers: dict[str, str], research: str
) -> None:
    assert await grant_of(site, project={"id": research}) == (ALICE, [])
    r = await site.client.get(f"{V3}/users/{ALICE}", headers=admin_headers)
    assert r.status_code == 404


async def test_a_rule_grants_its_role_and_the_roles_it_implies(
    site: InProcessSite, admin_headers: dict[str, str], research: str
) -> None:
    await add_rule(site, admin_headers, site="Paris", role="member", project="research")
    assert await grant_of(site, project={"id": research}) == (ALICE, ["member", "reader"])
    # Recorded here, owned by Paris, for the operator to see who acted.
    r = await site.client.get(f"{V3}/users/{ALICE}", headers=admin_headers)
    assert r.status_code == 200 and r.json()["user"]["name"] == "alice"
    # Other targets and other sites get nothing from it.
    other = (await create(site.client, admin_headers, "project", name="other"))["id"]
    assert await grant_of(site, project={"id": other}) == (ALICE, [])
    # Alice is Paris's user here now: Rome's token for her id acts under another id.
    rome = foreign_user_id("Rome", ALICE)
    assert await grant_of(site, issuer="Rome", project={"id": research}) == (rome, [])
    assert await grant_of(site, domain={"id": "default"}) == (ALICE, [])
    assert await grant_of(site) == (ALICE, [])  # unscoped


async def test_rules_match_by_site_domain_and_user(
    site: InProcessSite, admin_headers: dict[str, str], research: str
) -> None:
    await add_rule(site, admin_headers, site="*", user_domain="Default", user="bob",
               role="reader", project="research")  # fmt: skip
    await add_rule(site, admin_headers, site="Rome", user_domain="default", role="member",
               project="research")  # fmt: skip
    scope = {"project": {"id": research}}
    bob = predictable_id("user", "bob", domain_id="default")
    assert await grant_of(site, user_id=bob, name="bob", **scope) == (bob, ["reader"])
    assert await grant_of(site, **scope) == (ALICE, [])  # alice is not bob
    # The domain is matched by its id as well as by its name.
    assert await grant_of(site, issuer="Rome", **scope) == (ALICE, ["member", "reader"])
    elsewhere = {"id": "d-x", "name": "Elsewhere"}
    assert await grant_of(site, issuer="Rome", user_domain=elsewhere, **scope) == (ALICE, [])


async def test_a_rule_may_grant_on_a_domain_or_the_system(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    await add_rule(site, admin_headers, site="Paris", role="reader", domain="Default")
    await add_rule(site, admin_headers, site="Paris", role="admin", system=True)
    assert await grant_of(site, domain={"id": "default"}) == (ALICE, ["reader"])
    _, roles = await grant_of(site, system={"all": True})
    assert "admin" in roles and "reader" in roles


async def test_a_missing_or_disabled_target_grants_nothing(
    site: InProcessSite, admin_headers: dict[str, str], research: str
) -> None:
    await add_rule(site, admin_headers, site="Paris", role="member", project="later")
    later = predictable_id("project", "later", domain_id="default")
    assert await grant_of(site, project={"id": later}) == (ALICE, [])  # not made yet
    made = await create(site.client, admin_headers, "project", name="later")
    assert made["id"] == later  # a rule may name a project before it exists
    assert await grant_of(site, project={"id": later}) == (ALICE, ["member", "reader"])
    r = await site.client.patch(
        f"{V3}/projects/{later}", json={"project": {"enabled": False}}, headers=admin_headers
    )
    assert r.status_code == 200, r.text
    assert await grant_of(site, project={"id": later}) == (ALICE, [])


async def test_a_token_for_a_user_this_site_owns_acts_under_another_id(
    site: InProcessSite, admin_headers: dict[str, str], research: str
) -> None:
    local = await create(site.client, admin_headers, "user", name="carol", password="carol-pw-1")
    r = await site.client.put(
        f"{V3}/projects/{research}/users/{local['id']}/roles/"
        + predictable_id("role", "admin", domain_id=""),
        headers=admin_headers,
    )
    assert r.status_code == 204, r.text
    await add_rule(
        site, admin_headers, site="Paris", user="carol", role="reader", project="research"
    )

    user_id, roles = await grant_of(
        site, user_id=local["id"], name="carol", project={"id": research}
    )
    # Paris does not speak for Berlin's carol: none of her roles, and not her id.
    assert user_id == foreign_user_id("Paris", local["id"]) != local["id"]
    assert roles == ["reader"]  # only what the rule gives
    assert foreign_user_id("Rome", local["id"]) != user_id  # per issuer


async def test_a_user_received_from_the_issuer_keeps_its_roles_here_unless_disabled(
    site: InProcessSite, admin_headers: dict[str, str], research: str
) -> None:
    await add_rule(site, admin_headers, site="Paris", role="reader", project="research")
    scope = {"project": {"id": research}}
    assert await grant_of(site, **scope) == (ALICE, ["reader"])  # and alice is recorded
    # The operator grants the recorded user a role here: it counts for Paris's tokens.
    r = await site.client.put(
        f"{V3}/projects/{research}/users/{ALICE}/roles/"
        + predictable_id("role", "member", domain_id=""),
        headers=admin_headers,
    )
    assert r.status_code == 204, r.text
    assert await grant_of(site, **scope) == (ALICE, ["member", "reader"])
    # Rome's token for the same id is not Paris's user: another id, the rules only.
    assert await grant_of(site, issuer="Rome", **scope) == (foreign_user_id("Rome", ALICE), [])

    repos = site.app.state.ctx.authority.state.repos
    await repos.users.update(id=ALICE, changes={"enabled": False})
    with pytest.raises(Unauthorized, match=f"The account is disabled for user: {ALICE}."):
        await grant_of(site, **scope)


async def test_a_deleted_rule_takes_its_role_away_at_once(
    site: InProcessSite, admin_headers: dict[str, str], research: str
) -> None:
    rule = await add_rule(site, admin_headers, site="Paris", role="member", project="research")
    assert await grant_of(site, project={"id": research}) == (ALICE, ["member", "reader"])
    r = await site.client.delete(f"{V3}/OS-EDGE/mappings/{rule['id']}", headers=admin_headers)
    assert r.status_code == 204
    assert await grant_of(site, project={"id": research}) == (ALICE, [])
