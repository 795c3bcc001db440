"""What ``POST /v3/auth/tokens`` refuses, and in which words: a malformed request is a
400 naming the field, a wrong name a 401 naming what was not found (or saying nothing
of which part was wrong, for users and passwords), and an application credential that
expired, lost its roles or is asked to rescope a 401 saying so."""

from __future__ import annotations

from typing import Any

import httpx
from identity_helpers import V3, create, user_with_role

from edgefed.core.ids import predictable_id
from edgefed.testkit.inprocess import ADMIN_PASSWORD, InProcessSite

TOKENS = f"{V3}/auth/tokens"


def password(user: dict[str, Any], scope: Any = None) -> dict[str, Any]:
    auth: dict[str, Any] = {"identity": {"methods": ["password"], "password": {"user": user}}}
    if scope is not None:
        auth["scope"] = scope
    return {"auth": auth}


def admin_user(**overrides: Any) -> dict[str, Any]:
    return {"name": "admin", "domain": {"id": "default"}, "password": "", **overrides}


async def ask(site: InProcessSite, body: Any) -> httpx.Response:
    return await site.client.post(TOKENS, json=body)


def message(r: httpx.Response) -> str:
    return str(r.json()["error"]["message"])


async def test_a_users_domain_unknown_by_name_is_a_401_naming_it(site: InProcessSite) -> None:
    r = await ask(site, password(admin_user(domain={"name": "Nowhere"}, password="x")))
    assert r.status_code == 401
    assert message(r) == "Could not find domain: Nowhere."


async def test_malformed_identities_are_400s_naming_the_field(site: InProcessSite) -> None:
    for user, says in (
        (admin_user(domain={}, password="x"), "'password.user.domain' needs an 'id' or a 'name'"),
        (admin_user(password=5), "password must be a string"),
        ({"name": "admin", "password": "x"}, "domain"),
    ):
        r = await ask(site, password(user))
        assert r.status_code == 400, (user, r.text)
        assert says in message(r), r.text


async def test_an_unknown_user_and_a_wrong_password_read_the_same(site: InProcessSite) -> None:
    unknown = await ask(site, password(admin_user(name="nobody", password="x")))
    wrong = await ask(site, password(admin_user(password="not-the-password")))
    assert unknown.status_code == wrong.status_code == 401
    assert message(unknown) == message(wrong)  # which part was wrong is not told


async def test_scopes_are_checked_before_a_token_is_made(site: InProcessSite) -> None:
    user = admin_user(password=ADMIN_PASSWORD)
    cases = (
        ({"project": {"name": "ghost", "domain": {"id": "default"}}}, 401,
         "Could not find project: ghost."),
        ({"project": {"name": "admin", "domain": {"name": "Nowhere"}}}, 401,
         "Could not find domain: Nowhere."),
        ({"system": {"all": False}}, 400, "scope.system must be {'all': true}"),
        ({"galaxy": {}}, 400, "scope must name a project, a domain or the system"),
        ({"project": {"name": "admin"}}, 400, "domain"),
    )  # fmt: skip
    for scope, status, says in cases:
        r = await ask(site, password(user, scope))
        assert r.status_code == status, (scope, r.text)
        assert says in message(r), r.text


async def test_a_scope_by_id_or_name_gives_that_scope_if_held(site: InProcessSite) -> None:
    user = admin_user(password=ADMIN_PASSWORD)
    admin_project = predictable_id("project", "admin", domain_id="default")
    r = await ask(site, password(user, {"project": {"id": admin_project}}))
    assert r.status_code == 201, r.text
    assert r.json()["token"]["project"]["id"] == admin_project
    # A scope the user holds no role on is refused, naming it.
    r = await ask(site, password(user, {"domain": {"name": "Default"}}))
    assert r.status_code == 401
    assert message(r).endswith("has no access to domain default.")
    r = await ask(site, password(user, {"system": {"all": True}}))
    assert r.status_code == 201, r.text
    assert r.json()["token"]["system"] == {"all": True}


async def credential_of(
    site: InProcessSite,
    admin_headers: dict[str, str],
    name: str,
    role: str,
    roles: tuple[str, ...] | list[str] = (),
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A user ``name`` holding ``role`` on project ``p``, and a credential of it with
    ``roles`` (none named: all of the token's)."""
    headers = await user_with_role(site.client, admin_headers, name=name, role=role, project="p")
    uid = predictable_id("user", name, domain_id="default")
    r = await site.client.post(
        f"{V3}/users/{uid}/application_credentials",
        json={"application_credential": {"name": "ci", "roles": [{"name": n} for n in roles]}},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    cred = r.json()["application_credential"]
    auth = {
        "auth": {
            "identity": {
                "methods": ["application_credential"],
                "application_credential": {"id": cred["id"], "secret": cred["secret"]},
            }
        }
    }
    return cred, auth


async def test_a_credentials_token_cannot_be_rescoped(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    _, auth = await credential_of(site, admin_headers, "quinn", "member")
    token = (await ask(site, auth)).headers["x-subject-token"]
    rescope = {
        "auth": {
            "identity": {"methods": ["token"], "token": {"id": token}},
            "scope": {"project": {"name": "p", "domain": {"id": "default"}}},
        }
    }
    r = await ask(site, rescope)
    assert r.status_code == 401
    assert message(r) == "A token created with an application credential cannot be rescoped."


async def test_an_expired_credential_is_refused(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    cred, auth = await credential_of(site, admin_headers, "rae", "member")
    repos = site.app.state.ctx.authority.state.repos
    await repos.credentials.update(id=cred["id"], changes={"expires_at": 1.0})
    r = await ask(site, auth)
    assert r.status_code == 401
    assert message(r) == "Application credential has expired."


async def test_a_credential_whose_roles_were_taken_away_is_refused(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    _, auth = await credential_of(site, admin_headers, "sam", "member", roles=["reader"])
    assert (await ask(site, auth)).status_code == 201
    uid = predictable_id("user", "sam", domain_id="default")
    project = predictable_id("project", "p", domain_id="default")
    grants = f"{V3}/projects/{project}/users/{uid}/roles"
    auditor = (await create(site.client, admin_headers, "role", name="auditor"))["id"]
    member = predictable_id("role", "member", domain_id="")
    # Sam keeps a role on the project (auditor), none the credential may use (reader).
    assert (await site.client.put(f"{grants}/{auditor}", headers=admin_headers)).status_code == 204
    r = await site.client.delete(f"{grants}/{member}", headers=admin_headers)
    assert r.status_code == 204, r.text
    r = await ask(site, auth)
    assert r.status_code == 401
    assert message(r) == "The application credential's roles are no longer assigned to its user."
    # Without any role on the project, the project itself is refused.
    r = await site.client.delete(f"{grants}/{auditor}", headers=admin_headers)
    assert r.status_code == 204
    r = await ask(site, auth)
    assert r.status_code == 401
    assert message(r).endswith(f"has no access to project {project}.")
