"""Application credentials: who may make one (the user itself, with a project-scoped
token that no restricted credential issued), what it may carry (roles the token holds,
an expiry in the future written in ISO 8601), and what its tokens are: bound to its
project and roles, refused once it expired; listed by name, shown to its user only."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
from identity_helpers import V3, login, user_with_role

from edgefed.core.ids import predictable_id
from edgefed.testkit.inprocess import InProcessSite


def path_of(name: str) -> str:
    return f"{V3}/users/{predictable_id('user', name, domain_id='default')}/application_credentials"


async def make(
    site: InProcessSite, headers: dict[str, str], user: str, **fields: Any
) -> httpx.Response:
    fields.setdefault("name", "ci")
    return await site.client.post(
        path_of(user), json={"application_credential": fields}, headers=headers
    )


def credential_auth(cred: dict[str, Any]) -> dict[str, Any]:
    return {
        "auth": {
            "identity": {
                "methods": ["application_credential"],
                "application_credential": {"id": cred["id"], "secret": cred["secret"]},
            }
        }
    }


async def test_the_expiry_is_kept_and_shown_as_keystone_writes_it(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    ivy = await user_with_role(site.client, admin_headers, name="ivy", role="member", project="p")
    r = await make(site, ivy, "ivy", expires_at="2099-01-02T03:04:05Z")
    assert r.status_code == 201, r.text
    assert r.json()["application_credential"]["expires_at"] == "2099-01-02T03:04:05.000000"
    r = await make(site, ivy, "ivy", name="naive", expires_at="2099-01-02T03:04:05")
    assert r.json()["application_credential"]["expires_at"] == "2099-01-02T03:04:05.000000"
    r = await make(site, ivy, "ivy", name="forever")
    assert r.json()["application_credential"]["expires_at"] is None


async def test_an_expiry_in_the_past_or_not_a_time_is_refused(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    jo = await user_with_role(site.client, admin_headers, name="jo", role="member", project="p")
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat()
    r = await make(site, jo, "jo", expires_at=past)
    assert r.status_code == 400
    assert "expires_at must be in the future" in r.text
    r = await make(site, jo, "jo", expires_at="next tuesday")
    assert r.status_code == 400
    assert "Invalid input for field 'expires_at'" in r.text
    assert (await site.client.get(path_of("jo"), headers=jo)).json()[
        "application_credentials"
    ] == []


async def test_a_credential_needs_a_project_scoped_token(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    await user_with_role(site.client, admin_headers, name="kim", role="member", project="p")
    r = await login(site.client, "kim", "kim-pw")  # unscoped
    assert r.status_code == 201, r.text
    unscoped = {"X-Auth-Token": r.headers["x-subject-token"]}
    r = await make(site, unscoped, "kim")
    assert r.status_code == 403
    assert "needs a project-scoped token" in r.text


async def test_a_role_the_token_does_not_hold_is_refused_by_name(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    lu = await user_with_role(site.client, admin_headers, name="lu", role="reader", project="p")
    r = await make(site, lu, "lu", roles=[{"name": "member"}])
    assert r.status_code == 403
    assert "Role member is not assigned to the user on this project." in r.text
    unknown = "0" * 32
    r = await make(site, lu, "lu", roles=[{"id": unknown}])
    assert r.status_code == 403
    assert f"Role {unknown} is not assigned" in r.text


async def test_a_restricted_credential_cannot_make_another(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    mo = await user_with_role(site.client, admin_headers, name="mo", role="member", project="p")
    restricted = (await make(site, mo, "mo")).json()["application_credential"]
    r = await site.client.post(f"{V3}/auth/tokens", json=credential_auth(restricted))
    assert r.status_code == 201, r.text
    via_restricted = {"X-Auth-Token": r.headers["x-subject-token"]}
    r = await make(site, via_restricted, "mo", name="child")
    assert r.status_code == 403
    assert "A restricted application credential cannot create another one." in r.text

    free = (await make(site, mo, "mo", name="free", unrestricted=True)).json()
    assert free["application_credential"]["unrestricted"] is True
    r = await site.client.post(
        f"{V3}/auth/tokens", json=credential_auth(free["application_credential"])
    )
    via_free = {"X-Auth-Token": r.headers["x-subject-token"]}
    assert (await make(site, via_free, "mo", name="child")).status_code == 201


async def test_a_credentials_token_is_bound_to_its_project_and_roles(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    ned = await user_with_role(site.client, admin_headers, name="ned", role="member", project="p")
    cred = (await make(site, ned, "ned", roles=[{"name": "reader"}])).json()
    body = credential_auth(cred["application_credential"])
    # Asking for another scope with it is not possible: the credential names its own.
    body["auth"]["scope"] = {"project": {"name": "admin", "domain": {"id": "default"}}}
    r = await site.client.post(f"{V3}/auth/tokens", json=body)
    assert r.status_code == 401
    assert "Application credentials cannot request a scope." in r.text
    del body["auth"]["scope"]
    token = (await site.client.post(f"{V3}/auth/tokens", json=body)).json()["token"]
    assert token["project"]["name"] == "p"
    assert [x["name"] for x in token["roles"]] == ["reader"]


async def test_credentials_are_listed_by_name_and_shown_to_their_user_only(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    oz = await user_with_role(site.client, admin_headers, name="oz", role="member", project="p")
    pia = await user_with_role(site.client, admin_headers, name="pia", role="member", project="p")
    made = (await make(site, oz, "oz", name="deploy")).json()["application_credential"]
    await make(site, oz, "oz", name="backup")

    r = await site.client.get(path_of("oz"), params={"name": "deploy"}, headers=oz)
    assert [c["id"] for c in r.json()["application_credentials"]] == [made["id"]]
    r = await site.client.get(f"{path_of('oz')}/{made['id']}", headers=oz)
    assert r.status_code == 200 and "secret" not in r.json()["application_credential"]
    # Another user sees neither the list nor the credential; an admin may read it.
    assert (await site.client.get(path_of("oz"), headers=pia)).status_code == 403
    r = await site.client.get(f"{path_of('oz')}/{made['id']}", headers=pia)
    assert r.status_code == 403
    assert "identity:get_application_credential" in r.text
    r = await site.client.get(f"{path_of('oz')}/{made['id']}", headers=admin_headers)
    assert r.status_code == 200
    r = await site.client.get(f"{path_of('oz')}/{'f' * 32}", headers=oz)
    assert r.status_code == 404
    assert f"Could not find application credential: {'f' * 32}." in r.text
