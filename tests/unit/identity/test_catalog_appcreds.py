"""Regions, services, endpoints (generated and created) and application credentials."""

from __future__ import annotations

from identity_helpers import V3, create, user_with_role

from edgefed.core.ids import predictable_id


async def test_generated_catalog_is_listed(site, admin_headers):
    c, h = site.client, admin_headers
    r = await c.get(f"{V3}/regions", headers=h)
    assert [x["id"] for x in r.json()["regions"]] == ["Berlin"]
    r = await c.get(f"{V3}/services", params={"type": "identity"}, headers=h)
    (svc,) = r.json()["services"]
    r = await c.get(f"{V3}/endpoints", params={"service_id": svc["id"]}, headers=h)
    eps = r.json()["endpoints"]
    assert {e["interface"] for e in eps} == {"public", "internal", "admin"}
    assert all(
        e["region_id"] == "Berlin" and e["url"] == "http://berlin.test/identity" for e in eps
    )
    r = await c.get(f"{V3}/endpoints/{eps[0]['id']}", headers=h)
    assert r.status_code == 200
    assert (await c.delete(f"{V3}/services/{svc['id']}", headers=h)).status_code == 409
    r = await c.get(f"{V3}/auth/catalog", headers=h)
    assert any(s["type"] == "identity" for s in r.json()["catalog"])


async def test_created_service_endpoint_and_region_reach_the_catalog(site, admin_headers):
    c, h = site.client, admin_headers
    region = await create(c, h, "region", id="Lab", description="a lab")
    svc = await create(c, h, "service", type="metric", name="gnocchi")
    ep = await create(
        c, h, "endpoint", service_id=svc["id"], interface="public", url="http://x/metric",
        region_id=region["id"],
    )  # fmt: skip
    assert ep["region"] == "Lab"
    r = await c.get(f"{V3}/auth/catalog", headers=h)
    metric = next(s for s in r.json()["catalog"] if s["type"] == "metric")
    assert metric["endpoints"][0]["url"] == "http://x/metric"
    r = await c.post(
        f"{V3}/endpoints",
        json={"endpoint": {"service_id": svc["id"], "interface": "sideways", "url": "http://y"}},
        headers=h,
    )
    assert r.status_code == 400
    r = await c.post(
        f"{V3}/endpoints",
        json={"endpoint": {"service_id": "nope", "interface": "public", "url": "http://y"}},
        headers=h,
    )
    assert r.status_code == 400
    r = await c.patch(
        f"{V3}/endpoints/{ep['id']}", json={"endpoint": {"url": "http://z/metric"}}, headers=h
    )
    assert r.json()["endpoint"]["url"] == "http://z/metric"
    assert (await c.delete(f"{V3}/endpoints/{ep['id']}", headers=h)).status_code == 204
    assert (await c.delete(f"{V3}/services/{svc['id']}", headers=h)).status_code == 204
    assert (await c.delete(f"{V3}/regions/Lab", headers=h)).status_code == 204
    assert (await c.delete(f"{V3}/regions/Berlin", headers=h)).status_code == 409


async def test_application_credential_lifecycle(site, admin_headers):
    c, h = site.client, admin_headers
    fay = await user_with_role(c, h, name="fay", role="member", project="apps")
    uid = predictable_id("user", "fay", domain_id="default")
    base = f"{V3}/users/{uid}/application_credentials"
    r = await c.post(
        base, json={"application_credential": {"name": "ci", "roles": [{"name": "reader"}]}},
        headers=fay,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    cred = r.json()["application_credential"]
    assert cred["secret"] and [x["name"] for x in cred["roles"]] == ["reader"]
    r = await c.get(base, headers=fay)
    listed = r.json()["application_credentials"]
    assert [x["name"] for x in listed] == ["ci"] and "secret" not in listed[0]
    # admin roles cannot be delegated by a member
    r = await c.post(
        base, json={"application_credential": {"name": "x", "roles": [{"name": "admin"}]}},
        headers=fay,
    )  # fmt: skip
    assert r.status_code == 403
    # nobody creates credentials for somebody else
    assert (
        await c.post(base, json={"application_credential": {"name": "y"}}, headers=h)
    ).status_code == 403

    auth = {
        "identity": {
            "methods": ["application_credential"],
            "application_credential": {"id": cred["id"], "secret": cred["secret"]},
        }
    }
    r = await c.post(f"{V3}/auth/tokens", json={"auth": auth})
    assert r.status_code == 201, r.text
    cred_token = {"X-Auth-Token": r.headers["x-subject-token"]}
    token = r.json()["token"]
    assert token["methods"] == ["application_credential"]
    assert token["project"]["name"] == "apps"
    assert [x["name"] for x in token["roles"]] == ["reader"]
    assert token["application_credential"]["id"] == cred["id"]
    by_name = {
        "identity": {
            "methods": ["application_credential"],
            "application_credential": {
                "name": "ci",
                "user": {"name": "fay", "domain": {"id": "default"}},
                "secret": cred["secret"],
            },
        }
    }
    assert (await c.post(f"{V3}/auth/tokens", json={"auth": by_name})).status_code == 201
    auth["identity"]["application_credential"]["secret"] = "wrong"
    assert (await c.post(f"{V3}/auth/tokens", json={"auth": auth})).status_code == 401
    auth["identity"]["application_credential"]["secret"] = cred["secret"]
    assert (await c.get("/compute/v2.1/servers", headers=cred_token)).status_code == 200
    assert (await c.delete(f"{base}/{cred['id']}", headers=fay)).status_code == 204
    assert (await c.post(f"{V3}/auth/tokens", json={"auth": auth})).status_code == 401
    # Its tokens die with it (Keystone revokes them; here by a revocation event).
    assert (await c.get("/compute/v2.1/servers", headers=cred_token)).status_code == 401
    assert (await c.get(f"{base}/{cred['id']}", headers=fay)).status_code == 404


async def test_application_credential_without_roles_gets_the_tokens_roles(site, admin_headers):
    c, h = site.client, admin_headers
    gus = await user_with_role(c, h, name="gus", role="member", project="apps2")
    uid = predictable_id("user", "gus", domain_id="default")
    r = await c.post(
        f"{V3}/users/{uid}/application_credentials",
        json={"application_credential": {"name": "all", "roles": []}},
        headers=gus,
    )
    assert r.status_code == 201
    names = {x["name"] for x in r.json()["application_credential"]["roles"]}
    assert names == {"member", "reader"}
    r = await c.post(
        f"{V3}/users/{uid}/application_credentials",
        json={"application_credential": {"name": "bad", "expires_at": "yesterday"}},
        headers=gus,
    )
    assert r.status_code == 400


async def test_application_credential_access_rules_are_refused_not_ignored(site, admin_headers):
    """A credential that claims to allow only GET /compute/v2.1/servers but whose tokens
    could do everything its roles allow must not exist: creation is a 400 naming the field."""
    c, h = site.client, admin_headers
    hal = await user_with_role(c, h, name="hal", role="member", project="apps3")
    uid = predictable_id("user", "hal", domain_id="default")
    rules = [{"service": "compute", "path": "/v2.1/servers", "method": "GET"}]
    r = await c.post(
        f"{V3}/users/{uid}/application_credentials",
        json={"application_credential": {"name": "ro", "access_rules": rules}},
        headers=hal,
    )
    assert r.status_code == 400, r.text
    assert "access_rules" in r.json()["error"]["message"]
    r = await c.get(f"{V3}/users/{uid}/application_credentials", headers=hal)
    assert r.json()["application_credentials"] == []
    # An empty list asks for no restriction: fine.
    r = await c.post(
        f"{V3}/users/{uid}/application_credentials",
        json={"application_credential": {"name": "plain", "access_rules": []}},
        headers=hal,
    )
    assert r.status_code == 201, r.text
    assert r.json()["application_credential"]["access_rules"] == []
