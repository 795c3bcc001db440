"""Projects, users, domains and groups: CRUD, filters, bad input, policy."""

from __future__ import annotations

import pytest
from identity_helpers import V3, create, grant, login, user_with_role

from edgefed.core.ids import predictable_id


async def test_project_crud_and_filters(site, admin_headers):
    c, h = site.client, admin_headers
    p = await create(c, h, "project", name="alpha", description="first", tags=["edge", "eu"])
    assert p["id"] == predictable_id("project", "alpha", domain_id="default")
    assert p["domain_id"] == "default" and p["parent_id"] == "default"
    assert p["is_domain"] is False and p["enabled"] is True
    assert p["links"]["self"].endswith(f"/identity/v3/projects/{p['id']}")
    child = await create(c, h, "project", name="alpha-child", parent_id=p["id"])
    assert child["parent_id"] == p["id"]

    r = await c.get(f"{V3}/projects", params={"name": "alpha"}, headers=h)
    body = r.json()
    assert [x["name"] for x in body["projects"]] == ["alpha"]
    assert set(body["links"]) == {"self", "previous", "next"}
    r = await c.get(f"{V3}/projects", params={"parent_id": p["id"]}, headers=h)
    assert [x["name"] for x in r.json()["projects"]] == ["alpha-child"]
    r = await c.get(f"{V3}/projects", params={"tags": "edge,eu"}, headers=h)
    assert [x["name"] for x in r.json()["projects"]] == ["alpha"]

    r = await c.patch(f"{V3}/projects/{p['id']}", json={"project": {"enabled": False}}, headers=h)
    assert r.status_code == 200 and r.json()["project"]["enabled"] is False
    r = await c.patch(
        f"{V3}/projects/{p['id']}", json={"project": {"domain_id": "other"}}, headers=h
    )
    assert r.status_code == 400 and "domain_id" in r.json()["error"]["message"]
    r = await c.get(f"{V3}/projects", params={"enabled": "false"}, headers=h)
    assert [x["name"] for x in r.json()["projects"]] == ["alpha"]

    r = await c.delete(f"{V3}/projects/{p['id']}", headers=h)
    assert r.status_code == 403  # still has a child
    assert (await c.delete(f"{V3}/projects/{child['id']}", headers=h)).status_code == 204
    assert (await c.delete(f"{V3}/projects/{p['id']}", headers=h)).status_code == 204
    r = await c.get(f"{V3}/projects/{p['id']}", headers=h)
    assert r.status_code == 404
    assert r.json()["error"]["message"] == f"Could not find project: {p['id']}."


async def test_duplicate_project_is_409_with_keystone_message(site, admin_headers):
    await create(site.client, admin_headers, "project", name="dup")
    r = await site.client.post(
        f"{V3}/projects", json={"project": {"name": "dup"}}, headers=admin_headers
    )
    assert r.status_code == 409
    assert r.json()["error"]["message"] == (
        "Conflict occurred attempting to store project - "
        "Duplicate entry found with name dup at domain ID default."
    )


@pytest.mark.parametrize(
    "body",
    [
        {"project": {}},
        {"project": {"name": 42}},
        {"project": {"name": ""}},
        {"project": {"name": "x", "enabled": "yes"}},
        {"project": {"name": "x", "tags": "a"}},
        {"project": {"name": "x", "domain_id": "nope"}},
        {"project": {"name": "x", "is_domain": True}},
        {"projects": {"name": "x"}},
        [],
    ],
)
async def test_bad_project_bodies_are_400(site, admin_headers, body):
    r = await site.client.post(f"{V3}/projects", json=body, headers=admin_headers)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == 400


async def test_malformed_json_is_400(site, admin_headers):
    r = await site.client.post(
        f"{V3}/users",
        content=b'{"user": {',
        headers={**admin_headers, "content-type": "application/json"},
    )
    assert r.status_code == 400
    assert "JSON" in r.json()["error"]["message"]


async def test_user_crud_extras_and_filters(site, admin_headers):
    c, h = site.client, admin_headers
    u = await create(c, h, "user", name="alice", password="pw-a", email="a@example.org")
    assert u["id"] == predictable_id("user", "alice", domain_id="default")
    assert u["email"] == "a@example.org" and "password" not in u
    assert u["password_expires_at"] is None
    r = await c.get(f"{V3}/users", params={"name": "alice"}, headers=h)
    assert [x["id"] for x in r.json()["users"]] == [u["id"]]
    r = await c.patch(f"{V3}/users/{u['id']}", json={"user": {"description": "ops"}}, headers=h)
    assert r.json()["user"]["description"] == "ops"
    assert r.json()["user"]["email"] == "a@example.org"
    r = await c.post(f"{V3}/users", json={"user": {"name": "alice"}}, headers=h)
    assert r.status_code == 409
    assert (await c.delete(f"{V3}/users/{u['id']}", headers=h)).status_code == 204
    assert (await c.get(f"{V3}/users/{u['id']}", headers=h)).status_code == 404
    assert (await c.delete(f"{V3}/users/{u['id']}", headers=h)).status_code == 404


async def test_new_user_logs_in_and_reads_itself(site, admin_headers):
    c, h = site.client, admin_headers
    project = await create(c, h, "project", name="team")
    user = await create(
        c, h, "user", name="bob", password="bob-pw", default_project_id=project["id"]
    )
    await grant(c, h, project=project["id"], user=user["id"], role="member")
    r = await login(c, "bob", "bob-pw", "team")
    assert r.status_code == 201
    assert {x["name"] for x in r.json()["token"]["roles"]} == {"member", "reader"}
    bob = {"X-Auth-Token": r.headers["x-subject-token"]}
    assert (await c.get(f"{V3}/users/{user['id']}", headers=bob)).status_code == 200
    r = await c.get(f"{V3}/users/{user['id']}/projects", headers=bob)
    assert [x["name"] for x in r.json()["projects"]] == ["team"]
    r = await c.get(f"{V3}/auth/projects", headers=bob)
    assert [x["name"] for x in r.json()["projects"]] == ["team"]
    assert (await c.get(f"{V3}/projects/{project['id']}", headers=bob)).status_code == 200
    # unscoped login falls back to the default project
    r = await login(c, "bob", "bob-pw")
    assert r.json()["token"]["project"]["id"] == project["id"]
    # another user's record is not bob's business
    admin_id = predictable_id("user", "admin", domain_id="default")
    assert (await c.get(f"{V3}/users/{admin_id}", headers=bob)).status_code == 403


async def test_self_service_password_change_revokes_old_tokens(site, admin_headers):
    c, h = site.client, admin_headers
    carol = await user_with_role(c, h, name="carol", role="member", project="p1")
    me = (await c.get(f"{V3}/auth/projects", headers=carol)).status_code
    assert me == 200
    uid = predictable_id("user", "carol", domain_id="default")
    body = {"user": {"original_password": "wrong", "password": "new-pw"}}
    r = await c.post(f"{V3}/users/{uid}/password", json=body, headers=carol)
    assert r.status_code == 401
    body["user"]["original_password"] = "carol-pw"
    r = await c.post(f"{V3}/users/{uid}/password", json=body, headers=carol)
    assert r.status_code == 204
    assert (await c.get(f"{V3}/auth/projects", headers=carol)).status_code == 401
    assert (await login(c, "carol", "carol-pw", "p1")).status_code == 401
    assert (await login(c, "carol", "new-pw", "p1")).status_code == 201


async def test_disabled_user_and_project_cannot_log_in(site, admin_headers):
    c, h = site.client, admin_headers
    dave = await user_with_role(c, h, name="dave", role="member", project="p2")
    uid = predictable_id("user", "dave", domain_id="default")
    r = await c.patch(f"{V3}/users/{uid}", json={"user": {"enabled": False}}, headers=h)
    assert r.status_code == 200
    assert (await c.get(f"{V3}/auth/projects", headers=dave)).status_code == 401
    assert (await login(c, "dave", "dave-pw", "p2")).status_code == 401
    await c.patch(f"{V3}/users/{uid}", json={"user": {"enabled": True}}, headers=h)
    assert (await login(c, "dave", "dave-pw", "p2")).status_code == 201
    pid = predictable_id("project", "p2", domain_id="default")
    await c.patch(f"{V3}/projects/{pid}", json={"project": {"enabled": False}}, headers=h)
    r = await login(c, "dave", "dave-pw", "p2")
    assert r.status_code == 401 and "disabled" in r.json()["error"]["message"]


async def test_reader_and_member_cannot_administer_identity(site, admin_headers):
    c, h = site.client, admin_headers
    reader = await user_with_role(c, h, name="rita", role="reader", project="p3")
    member = await user_with_role(c, h, name="mike", role="member", project="p3")
    for who in (reader, member):
        for path, body in (
            ("projects", {"project": {"name": "nope"}}),
            ("users", {"user": {"name": "nope"}}),
            ("groups", {"group": {"name": "nope"}}),
            ("roles", {"role": {"name": "nope"}}),
        ):
            r = await c.post(f"{V3}/{path}", json=body, headers=who)
            assert r.status_code == 403, (path, r.text)
            assert "not authorized" in r.json()["error"]["message"]
        assert (await c.get(f"{V3}/users", headers=who)).status_code == 403
        pid = predictable_id("project", "p3", domain_id="default")
        r = await c.patch(f"{V3}/projects/{pid}", json={"project": {"name": "x"}}, headers=who)
        assert r.status_code == 403
        rid = predictable_id("role", "admin", domain_id="")
        uid = predictable_id("user", "rita", domain_id="default")
        r = await c.put(f"{V3}/projects/{pid}/users/{uid}/roles/{rid}", headers=who)
        assert r.status_code == 403


async def test_domains(site, admin_headers):
    c, h = site.client, admin_headers
    r = await c.get(f"{V3}/domains/default", headers=h)
    assert r.json()["domain"]["name"] == "Default"
    d = await create(c, h, "domain", name="Edge")
    p = await create(c, h, "project", name="alpha", domain_id=d["id"])
    assert p["id"] == predictable_id("project", "alpha", domain_id=d["id"])
    r = await c.delete(f"{V3}/domains/{d['id']}", headers=h)
    assert r.status_code == 403  # enabled
    await c.patch(f"{V3}/domains/{d['id']}", json={"domain": {"enabled": False}}, headers=h)
    assert (await c.delete(f"{V3}/domains/{d['id']}", headers=h)).status_code == 403  # has projects
    await c.delete(f"{V3}/projects/{p['id']}", headers=h)
    assert (await c.delete(f"{V3}/domains/{d['id']}", headers=h)).status_code == 204
    assert (await c.delete(f"{V3}/domains/default", headers=h)).status_code == 403
    assert (await c.get(f"{V3}/domains/nope", headers=h)).status_code == 404


async def test_groups_and_membership(site, admin_headers):
    c, h = site.client, admin_headers
    g = await create(c, h, "group", name="ops")
    u = await create(c, h, "user", name="erin", password="erin-pw")
    p = await create(c, h, "project", name="gp")
    path = f"{V3}/groups/{g['id']}/users/{u['id']}"
    assert (await c.head(path, headers=h)).status_code == 404
    assert (await c.put(path, headers=h)).status_code == 204
    assert (await c.head(path, headers=h)).status_code == 204
    r = await c.get(f"{V3}/groups/{g['id']}/users", headers=h)
    assert [x["name"] for x in r.json()["users"]] == ["erin"]
    r = await c.get(f"{V3}/users/{u['id']}/groups", headers=h)
    assert [x["name"] for x in r.json()["groups"]] == ["ops"]
    # a role granted to the group lets the member in
    rid = predictable_id("role", "reader", domain_id="")
    r = await c.put(f"{V3}/projects/{p['id']}/groups/{g['id']}/roles/{rid}", headers=h)
    assert r.status_code == 204
    r = await login(c, "erin", "erin-pw", "gp")
    assert r.status_code == 201 and [x["name"] for x in r.json()["token"]["roles"]] == ["reader"]
    token = {"X-Auth-Token": r.headers["x-subject-token"]}
    assert (await c.delete(path, headers=h)).status_code == 204
    assert (await c.get(f"{V3}/auth/projects", headers=token)).status_code == 401
    assert (await login(c, "erin", "erin-pw", "gp")).status_code == 401
    assert (await c.put(f"{V3}/groups/{g['id']}/users/nope", headers=h)).status_code == 404
    r = await c.post(f"{V3}/groups", json={"group": {"name": "ops"}}, headers=h)
    assert r.status_code == 409
    assert (await c.delete(f"{V3}/groups/{g['id']}", headers=h)).status_code == 204


async def test_unknown_ids_are_404(site, admin_headers):
    c, h = site.client, admin_headers
    for path in ("projects/x", "users/x", "groups/x", "roles/x", "domains/x", "regions/x",
                 "services/x", "endpoints/x"):  # fmt: skip
        r = await c.get(f"{V3}/{path}", headers=h)
        assert r.status_code == 404, path
    r = await c.patch(f"{V3}/users/x", json={"user": {"enabled": False}}, headers=h)
    assert r.status_code == 404


async def test_locked_rows_refuse_local_writes(site, admin_headers):
    """A row received from a sync source may only change there (409 naming the source)."""
    from edgefed.store.identity import IdentityStore, ProjectRecord

    repos = IdentityStore(site.app.state.ctx.store)
    pid = predictable_id("project", "synced", domain_id="default")
    await repos.projects.upsert(
        record=ProjectRecord(id=pid, name="synced", domain_id="default", origin="Paris")
    )
    r = await site.client.patch(
        f"{V3}/projects/{pid}", json={"project": {"description": "x"}}, headers=admin_headers
    )
    assert r.status_code == 409
    assert "managed by sync source Paris" in r.json()["error"]["message"]
    assert (
        await site.client.delete(f"{V3}/projects/{pid}", headers=admin_headers)
    ).status_code == 409


async def test_locked_users_groups_roles_and_assignments(site, admin_headers):
    from edgefed.store.identity import (
        AssignmentRecord,
        GroupRecord,
        IdentityStore,
        RoleRecord,
        UserRecord,
    )

    c, h = site.client, admin_headers
    repos = IdentityStore(site.app.state.ctx.store)
    uid = predictable_id("user", "synced-user", domain_id="default")
    gid = predictable_id("group", "synced-group", domain_id="default")
    rid = predictable_id("role", "synced-role", domain_id="")
    await repos.users.upsert(
        record=UserRecord(id=uid, name="synced-user", domain_id="default", origin="Paris")
    )
    await repos.groups.upsert(
        record=GroupRecord(id=gid, name="synced-group", domain_id="default", origin="Paris")
    )
    await repos.roles.upsert(record=RoleRecord(id=rid, name="synced-role", origin="Paris"))
    pid = predictable_id("project", "admin", domain_id="default")
    await repos.assignments.grant(
        assignment=AssignmentRecord("user", uid, "project", pid, rid, origin="Paris")
    )
    refused = [
        await c.patch(f"{V3}/users/{uid}", json={"user": {"enabled": False}}, headers=h),
        await c.delete(f"{V3}/users/{uid}", headers=h),
        await c.patch(f"{V3}/groups/{gid}", json={"group": {"description": "x"}}, headers=h),
        await c.put(f"{V3}/groups/{gid}/users/{uid}", headers=h),
        await c.delete(f"{V3}/roles/{rid}", headers=h),
        await c.delete(f"{V3}/projects/{pid}/users/{uid}/roles/{rid}", headers=h),
    ]
    for r in refused:
        assert r.status_code == 409, r.text
        assert "sync source Paris" in r.json()["error"]["message"]
    # the received grant is still listed
    r = await c.get(f"{V3}/role_assignments", params={"user.id": uid}, headers=h)
    assert [a["role"]["id"] for a in r.json()["role_assignments"]] == [rid]
