"""Tokens: issue, validate, check, revoke; version discovery."""

from __future__ import annotations

from typing import Any

import pytest

from edgefed.testkit.inprocess import ADMIN_PASSWORD


def password_auth(
    user: str = "admin", password: str = ADMIN_PASSWORD, scope: Any = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {"name": user, "domain": {"id": "default"}, "password": password}
                },
            }
        }
    }
    if scope is not None:
        body["auth"]["scope"] = scope
    return body


ADMIN_PROJECT = {"project": {"name": "admin", "domain": {"name": "Default"}}}


async def test_versions_document(site):
    r = await site.client.get("/identity")
    assert r.status_code == 300
    (entry,) = r.json()["versions"]["values"]
    assert entry["id"] == "v3.14" and entry["status"] == "stable"
    assert entry["links"][0]["href"] == "http://berlin.test/identity/v3/"
    r = await site.client.get("/identity/v3")
    assert r.status_code == 200
    version = r.json()["version"]
    assert version["media-types"][0]["type"] == "application/vnd.openstack.identity-v3+json"


async def test_issue_project_scoped_token_has_keystone_body(site):
    r = await site.client.post("/identity/v3/auth/tokens", json=password_auth(scope=ADMIN_PROJECT))
    assert r.status_code == 201, r.text
    assert r.headers["x-subject-token"]
    token = r.json()["token"]
    assert token["methods"] == ["password"]
    assert token["user"]["name"] == "admin"
    assert token["user"]["domain"] == {"id": "default", "name": "Default"}
    assert token["user"]["password_expires_at"] is None
    assert token["project"]["name"] == "admin"
    assert token["is_domain"] is False
    assert {r["name"] for r in token["roles"]} == {"admin", "member", "reader"}
    assert token["expires_at"].endswith("Z") and "." in token["expires_at"]
    types = {s["type"] for s in token["catalog"]}
    assert "identity" in types
    identity = next(s for s in token["catalog"] if s["type"] == "identity")
    assert {e["interface"] for e in identity["endpoints"]} == {"public", "internal", "admin"}
    assert identity["endpoints"][0]["region_id"] == "Berlin"
    assert identity["endpoints"][0]["url"] == "http://berlin.test/identity"


async def test_nocatalog_and_unscoped_and_system_and_domain(site):
    r = await site.client.post(
        "/identity/v3/auth/tokens?nocatalog", json=password_auth(scope=ADMIN_PROJECT)
    )
    assert r.status_code == 201 and "catalog" not in r.json()["token"]
    r = await site.client.post("/identity/v3/auth/tokens", json=password_auth())
    assert r.status_code == 201
    assert "roles" not in r.json()["token"] and "project" not in r.json()["token"]
    r = await site.client.post(
        "/identity/v3/auth/tokens", json=password_auth(scope={"system": {"all": True}})
    )
    assert r.status_code == 201, r.text
    assert r.json()["token"]["system"] == {"all": True}
    r = await site.client.post(
        "/identity/v3/auth/tokens", json=password_auth(scope={"domain": {"id": "default"}})
    )
    assert r.status_code == 401  # admin has no role on the domain


async def test_wrong_password_and_unknown_user_are_401(site):
    for body in (password_auth(password="nope"), password_auth(user="ghost")):
        r = await site.client.post("/identity/v3/auth/tokens", json=body)
        assert r.status_code == 401
        assert r.json()["error"]["message"] == "The request you have made requires authentication."


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'{"auth": {}}',
        b'{"auth": {"identity": {"methods": "password"}}}',
        b'{"auth": {"identity": {"methods": ["password"], "password": 3}}}',
        b'{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "a"}}}}}',
    ],
)
async def test_malformed_auth_requests_are_400(site, body):
    r = await site.client.post(
        "/identity/v3/auth/tokens", content=body, headers={"content-type": "application/json"}
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"]


async def test_unsupported_method_is_401(site):
    body = {"auth": {"identity": {"methods": ["totp"], "totp": {}}}}
    r = await site.client.post("/identity/v3/auth/tokens", json=body)
    assert r.status_code == 401


async def test_validate_check_revoke(site, admin_headers):
    subject = await site.token()
    headers = {**admin_headers, "X-Subject-Token": subject}
    r = await site.client.get("/identity/v3/auth/tokens", headers=headers)
    assert r.status_code == 200
    assert r.headers["x-subject-token"] == subject
    assert r.json()["token"]["project"]["name"] == "admin"
    assert (await site.client.head("/identity/v3/auth/tokens", headers=headers)).status_code == 200
    r = await site.client.delete("/identity/v3/auth/tokens", headers=headers)
    assert r.status_code == 204
    r = await site.client.get("/identity/v3/auth/tokens", headers=headers)
    assert r.status_code == 404
    r = await site.client.get("/identity/v3/auth/catalog", headers={"X-Auth-Token": subject})
    assert r.status_code == 401


async def test_token_method_rescopes_and_keeps_expiry_and_chain(site):
    unscoped = await site.client.post("/identity/v3/auth/tokens", json=password_auth())
    parent = unscoped.headers["x-subject-token"]
    body = {
        "auth": {
            "identity": {"methods": ["token"], "token": {"id": parent}},
            "scope": ADMIN_PROJECT,
        }
    }
    r = await site.client.post("/identity/v3/auth/tokens", json=body)
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    assert token["methods"] == ["token", "password"]
    assert token["expires_at"] == unscoped.json()["token"]["expires_at"]
    assert token["audit_ids"][1] == unscoped.json()["token"]["audit_ids"][0]


@pytest.mark.parametrize("bad", ["", "abc", "a.b.c", "eyJhbGciOiJFZERTQSJ9.e30.AAAA"])
async def test_bad_tokens_are_401(site, bad):
    r = await site.client.get("/identity/v3/auth/catalog", headers={"X-Auth-Token": bad})
    assert r.status_code == 401


async def test_tampered_token_is_401(site, admin_headers):
    token = admin_headers["X-Auth-Token"]
    head, payload, sig = token.split(".")
    tampered = f"{head}.{payload[:-2]}AA.{sig}"
    r = await site.client.get("/identity/v3/auth/catalog", headers={"X-Auth-Token": tampered})
    assert r.status_code == 401


async def test_expired_token_is_401(tmp_path):
    from edgefed.testkit.inprocess import run_site, site_settings

    now = [1_700_000_000.0]
    async with run_site(site_settings(tmp_path / "s"), clock=lambda: now[0]) as s:
        token = await s.token()
        headers = {"X-Auth-Token": token}
        assert (await s.client.get("/identity/v3/auth/catalog", headers=headers)).status_code == 200
        now[0] += 3601
        r = await s.client.get("/identity/v3/auth/catalog", headers=headers)
        assert r.status_code == 401
        assert "expired" in r.json()["error"]["message"]


async def test_revocation_survives_restart(tmp_path):
    from edgefed.testkit.inprocess import run_site, site_settings

    settings = site_settings(tmp_path / "s")
    async with run_site(settings) as s:
        kept = await s.token()
        revoked = await s.token()
        r = await s.client.delete(
            "/identity/v3/auth/tokens", headers={"X-Auth-Token": kept, "X-Subject-Token": revoked}
        )
        assert r.status_code == 204
    async with run_site(settings) as s:
        ok = await s.client.get("/identity/v3/auth/catalog", headers={"X-Auth-Token": kept})
        assert ok.status_code == 200  # tokens issued before the restart still work
        r = await s.client.get("/identity/v3/auth/catalog", headers={"X-Auth-Token": revoked})
        assert r.status_code == 401


async def test_validation_needs_subject_and_is_limited_to_own_tokens(site, admin_headers):
    from identity_helpers import user_with_role

    r = await site.client.get("/identity/v3/auth/tokens", headers=admin_headers)
    assert r.status_code == 400 and "X-Subject-Token" in r.json()["error"]["message"]
    r = await site.client.get(
        "/identity/v3/auth/tokens", headers={**admin_headers, "X-Subject-Token": "garbage"}
    )
    assert r.status_code == 404
    bob = await user_with_role(site.client, admin_headers, name="bob", role="member", project="p")
    r = await site.client.get(
        "/identity/v3/auth/tokens",
        headers={**bob, "X-Subject-Token": admin_headers["X-Auth-Token"]},
    )
    assert r.status_code == 403
    r = await site.client.get(
        "/identity/v3/auth/tokens?nocatalog",
        headers={**bob, "X-Subject-Token": bob["X-Auth-Token"]},
    )
    assert r.status_code == 200 and "catalog" not in r.json()["token"]
    assert (await site.client.get("/identity/v3/auth/tokens")).status_code == 401


async def test_catalog_lists_every_fleet_site_as_a_region(site, admin_headers):
    site.app.state.ctx.peers["Paris"] = "http://paris.test"
    r = await site.client.get("/identity/v3/auth/catalog", headers=admin_headers)
    identity = next(s for s in r.json()["catalog"] if s["type"] == "identity")
    urls = {(e["region_id"], e["url"]) for e in identity["endpoints"]}
    assert urls == {
        ("Berlin", "http://berlin.test/identity"),
        ("Paris", "http://paris.test/identity"),
    }
    r = await site.client.get("/identity/v3/regions", headers=admin_headers)
    assert [x["id"] for x in r.json()["regions"]] == ["Berlin", "Paris"]
    # a fresh token's body and a validation both show the new region
    subject = await site.token()
    r = await site.client.get(
        "/identity/v3/auth/tokens", headers={**admin_headers, "X-Subject-Token": subject}
    )
    regions = {e["region_id"] for s in r.json()["token"]["catalog"] for e in s["endpoints"]}
    assert regions == {"Berlin", "Paris"}


async def test_validation_and_token_rescoping_do_not_touch_the_database(site, admin_headers):
    """The hot paths are served from memory: with the database unreachable they still work."""
    import contextlib

    store = site.app.state.ctx.store
    subject = await site.token()
    rescope = {
        "auth": {
            "identity": {"methods": ["token"], "token": {"id": subject}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}},
        }
    }
    headers = {**admin_headers, "X-Subject-Token": subject}
    assert (await site.client.get("/identity/v3/auth/tokens", headers=headers)).status_code == 200
    assert (await site.client.post("/identity/v3/auth/tokens", json=rescope)).status_code == 201

    @contextlib.asynccontextmanager
    async def unreachable():
        raise AssertionError("the database was used")
        yield

    original = store.read, store.write
    store.read = store.write = unreachable  # a fake at the store seam
    try:
        r = await site.client.get("/identity/v3/auth/tokens", headers=headers)
        assert r.status_code == 200
        r = await site.client.post("/identity/v3/auth/tokens", json=rescope)
        assert r.status_code == 201
        assert r.json()["token"]["project"]["name"] == "admin"
    finally:
        store.read, store.write = original


async def test_old_revocation_events_are_pruned_at_start(tmp_path):
    from edgefed.store.revocations import RevocationRepository
    from edgefed.testkit.inprocess import run_site, site_settings

    settings = site_settings(tmp_path / "s")
    now = [1_700_000_000.0]
    async with run_site(settings, clock=lambda: now[0]) as s:
        for _ in range(2):
            token = await s.token()
            r = await s.client.delete(
                "/identity/v3/auth/tokens",
                headers={"X-Auth-Token": token, "X-Subject-Token": token},
            )
            assert r.status_code == 204
        assert len(await RevocationRepository(s.app.state.ctx.store).all_since(0)) == 2
    now[0] += 3 * 86400
    async with run_site(settings, clock=lambda: now[0]) as s:
        # Only the newest stays, so that this site never numbers an event twice.
        kept = await RevocationRepository(s.app.state.ctx.store).all_since(0)
        assert [e.seq for e in kept] == [2]
        assert len(s.app.state.ctx.revocations) == 0  # and it revokes nothing any more


async def test_malformed_scope_is_400_even_with_a_wrong_password(site):
    for scope in ({"system": {"all": 1}}, {"project": {"name": "admin"}}, {"nothing": {}}, "x"):
        r = await site.client.post(
            "/identity/v3/auth/tokens", json=password_auth(password="wrong", scope=scope)
        )
        assert r.status_code == 400, (scope, r.text)
