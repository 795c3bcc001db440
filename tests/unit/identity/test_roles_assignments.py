"""Roles, implied roles, grants and GET /v3/role_assignments."""

from __future__ import annotations

from identity_helpers import V3, create, login

from edgefed.core.ids import predictable_id

ADMIN = predictable_id("role", "admin", domain_id="")
MEMBER = predictable_id("role", "member", domain_id="")
READER = predictable_id("role", "reader", domain_id="")
ADMIN_USER = predictable_id("user", "admin", domain_id="default")
ADMIN_PROJECT = predictable_id("project", "admin", domain_id="default")


async def test_default_roles_and_inferences(site, admin_headers):
    c, h = site.client, admin_headers
    r = await c.get(f"{V3}/roles", headers=h)
    assert {x["name"] for x in r.json()["roles"]} >= {"admin", "member", "reader"}
    r = await c.get(f"{V3}/role_inferences", headers=h)
    pairs = {
        (i["prior_role"]["name"], j["name"])
        for i in r.json()["role_inferences"]
        for j in i["implies"]
    }
    assert pairs == {("admin", "member"), ("member", "reader")}
    r = await c.get(f"{V3}/roles/{ADMIN}/implies", headers=h)
    assert [x["name"] for x in r.json()["role_inference"]["implies"]] == ["member"]


async def test_role_crud_and_implications(site, admin_headers):
    c, h = site.client, admin_headers
    op = await create(c, h, "role", name="operator")
    assert op["id"] == predictable_id("role", "operator", domain_id="")
    assert op["domain_id"] is None
    r = await c.post(f"{V3}/roles", json={"role": {"name": "operator"}}, headers=h)
    assert r.status_code == 409
    path = f"{V3}/roles/{op['id']}/implies/{READER}"
    r = await c.put(path, headers=h)
    assert r.status_code == 201
    assert r.json()["role_inference"]["implies"]["name"] == "reader"
    assert (await c.head(path, headers=h)).status_code == 204
    assert (await c.get(path, headers=h)).status_code == 200
    # cycles and implying admin are refused
    assert (await c.put(f"{V3}/roles/{READER}/implies/{op['id']}", headers=h)).status_code == 400
    assert (await c.put(f"{V3}/roles/{op['id']}/implies/{ADMIN}", headers=h)).status_code == 403
    assert (await c.delete(path, headers=h)).status_code == 204
    assert (await c.head(path, headers=h)).status_code == 404
    r = await c.patch(f"{V3}/roles/{op['id']}", json={"role": {"description": "ops"}}, headers=h)
    assert r.json()["role"]["description"] == "ops"
    assert (await c.delete(f"{V3}/roles/{op['id']}", headers=h)).status_code == 204
    assert (await c.get(f"{V3}/roles/{op['id']}", headers=h)).status_code == 404


async def test_grants_check_list_revoke_and_token_revocation(site, admin_headers):
    c, h = site.client, admin_headers
    p = await create(c, h, "project", name="gp")
    u = await create(c, h, "user", name="gina", password="gina-pw")
    path = f"{V3}/projects/{p['id']}/users/{u['id']}/roles"
    assert (await c.head(f"{path}/{MEMBER}", headers=h)).status_code == 404
    assert (await login(c, "gina", "gina-pw", "gp")).status_code == 401
    assert (await c.put(f"{path}/{MEMBER}", headers=h)).status_code == 204
    assert (await c.put(f"{path}/{MEMBER}", headers=h)).status_code == 204  # idempotent
    assert (await c.head(f"{path}/{MEMBER}", headers=h)).status_code == 204
    r = await c.get(path, headers=h)
    assert [x["name"] for x in r.json()["roles"]] == ["member"]
    r = await login(c, "gina", "gina-pw", "gp")
    assert r.status_code == 201
    token = {"X-Auth-Token": r.headers["x-subject-token"]}
    assert (await c.get(f"{V3}/auth/projects", headers=token)).status_code == 200
    assert (await c.delete(f"{path}/{MEMBER}", headers=h)).status_code == 204
    assert (await c.get(f"{V3}/auth/projects", headers=token)).status_code == 401
    assert (await c.delete(f"{path}/{MEMBER}", headers=h)).status_code == 404
    assert (await c.put(f"{path}/nope", headers=h)).status_code == 404
    r = await c.put(f"{V3}/projects/nope/users/{u['id']}/roles/{MEMBER}", headers=h)
    assert r.status_code == 404


async def test_system_and_domain_grants(site, admin_headers):
    c, h = site.client, admin_headers
    u = await create(c, h, "user", name="sys", password="sys-pw")
    r = await c.put(f"{V3}/system/users/{u['id']}/roles/{READER}", headers=h)
    assert r.status_code == 204
    r = await c.put(f"{V3}/domains/default/users/{u['id']}/roles/{MEMBER}", headers=h)
    assert r.status_code == 204
    auth = {
        "identity": {
            "methods": ["password"],
            "password": {"user": {"id": u["id"], "password": "sys-pw"}},
        },
        "scope": {"system": {"all": True}},
    }
    r = await c.post(f"{V3}/auth/tokens", json={"auth": auth})
    assert r.status_code == 201 and r.json()["token"]["roles"][0]["name"] == "reader"
    token = {"X-Auth-Token": r.headers["x-subject-token"]}
    r = await c.get(f"{V3}/auth/system", headers=token)
    assert r.json()["system"] == [{"all": True}]
    auth["scope"] = {"domain": {"name": "Default"}}
    r = await c.post(f"{V3}/auth/tokens", json={"auth": auth})
    assert r.status_code == 201
    assert r.json()["token"]["domain"] == {"id": "default", "name": "Default"}
    r = await c.get(f"{V3}/auth/domains", headers=token)
    assert [d["id"] for d in r.json()["domains"]] == ["default"]
    r = await c.get(f"{V3}/system/users/{u['id']}/roles", headers=h)
    assert [x["name"] for x in r.json()["roles"]] == ["reader"]


async def test_role_assignments_filters_effective_and_names(site, admin_headers):
    c, h = site.client, admin_headers
    p = await create(c, h, "project", name="ra")
    u = await create(c, h, "user", name="ray", password="ray-pw")
    g = await create(c, h, "group", name="raygroup")
    await c.put(f"{V3}/groups/{g['id']}/users/{u['id']}", headers=h)
    await c.put(f"{V3}/projects/{p['id']}/groups/{g['id']}/roles/{MEMBER}", headers=h)

    r = await c.get(f"{V3}/role_assignments", params={"scope.project.id": p["id"]}, headers=h)
    (only,) = r.json()["role_assignments"]
    assert only["group"] == {"id": g["id"]} and only["role"] == {"id": MEMBER}
    assert only["scope"] == {"project": {"id": p["id"]}}
    assert only["links"]["assignment"].endswith(
        f"/projects/{p['id']}/groups/{g['id']}/roles/{MEMBER}"
    )

    r = await c.get(
        f"{V3}/role_assignments",
        params={"user.id": u["id"], "effective": "", "include_names": "True"},
        headers=h,
    )
    items = r.json()["role_assignments"]
    assert {(i["role"]["name"], i["user"]["name"]) for i in items} == {
        ("member", "ray"),
        ("reader", "ray"),
    }
    assert all(i["scope"]["project"]["name"] == "ra" for i in items)
    assert all(i["user"]["domain"] == {"id": "default", "name": "Default"} for i in items)
    assert all("membership" in i["links"] for i in items)
    implied = next(i for i in items if i["role"]["name"] == "reader")
    assert implied["links"]["prior_role"].endswith(f"/roles/{MEMBER}")

    r = await c.get(f"{V3}/role_assignments", params={"scope.system": "all"}, headers=h)
    assert [(i["user"]["id"], i["scope"]) for i in r.json()["role_assignments"]] == [
        (ADMIN_USER, {"system": {"all": True}})
    ]
    r = await c.get(
        f"{V3}/role_assignments", params={"role.id": ADMIN, "user.id": ADMIN_USER}, headers=h
    )
    assert len(r.json()["role_assignments"]) == 2  # admin project + system


async def test_user_may_list_its_own_assignments_only(site, admin_headers):
    c, h = site.client, admin_headers
    p = await create(c, h, "project", name="own")
    u = await create(c, h, "user", name="olga", password="olga-pw")
    await c.put(f"{V3}/projects/{p['id']}/users/{u['id']}/roles/{READER}", headers=h)
    r = await login(c, "olga", "olga-pw", "own")
    olga = {"X-Auth-Token": r.headers["x-subject-token"]}
    r = await c.get(f"{V3}/role_assignments", params={"user.id": u["id"]}, headers=olga)
    assert r.status_code == 200 and len(r.json()["role_assignments"]) == 1
    assert (await c.get(f"{V3}/role_assignments", headers=olga)).status_code == 403


async def test_token_rescoping_sees_role_changes_at_once(site, admin_headers):
    """The grant cache is invalidated by every identity write."""
    c, h = site.client, admin_headers
    p = await create(c, h, "project", name="live")
    u = await create(c, h, "user", name="liv", password="liv-pw")
    await c.put(f"{V3}/projects/{p['id']}/users/{u['id']}/roles/{READER}", headers=h)
    unscoped = (await login(c, "liv", "liv-pw")).headers["x-subject-token"]
    rescope = {
        "auth": {
            "identity": {"methods": ["token"], "token": {"id": unscoped}},
            "scope": {"project": {"id": p["id"]}},
        }
    }

    async def roles() -> set[str]:
        r = await c.post(f"{V3}/auth/tokens", json=rescope)
        assert r.status_code == 201, r.text
        return {x["name"] for x in r.json()["token"]["roles"]}

    assert await roles() == {"reader"}
    await c.put(f"{V3}/projects/{p['id']}/users/{u['id']}/roles/{MEMBER}", headers=h)
    assert await roles() == {"member", "reader"}
    await c.patch(f"{V3}/roles/{MEMBER}", json={"role": {"description": "x"}}, headers=h)
    await c.put(f"{V3}/projects/{p['id']}/users/{u['id']}/roles/{ADMIN}", headers=h)
    assert await roles() == {"admin", "member", "reader"}
