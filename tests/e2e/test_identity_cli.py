"""The real ``openstack`` CLI and openstacksdk against a real site process (identity)."""

from __future__ import annotations

import httpx
import openstack
import pytest

pytestmark = pytest.mark.e2e


def test_token_issue(osc):
    token = osc.json("token", "issue")
    assert token["id"] and token["project_id"] and token["user_id"]


def test_admin_manages_projects_users_and_roles_and_new_user_logs_in(osc):
    project = osc.json("project", "create", "e2e-proj", "--description", "from the CLI")
    assert project["name"] == "e2e-proj" and project["enabled"] is True
    user = osc.json("user", "create", "e2e-user", "--password", "e2e-pw", "--email", "e@x.org")
    assert user["name"] == "e2e-user"
    osc.run("role", "add", "--user", "e2e-user", "--project", "e2e-proj", "member")
    rows = osc.json("role", "assignment", "list", "--names", "--project", "e2e-proj")
    assert {(r["Role"], r["User"], r["Project"]) for r in rows} == {
        ("member", "e2e-user@Default", "e2e-proj@Default")
    }
    as_user = osc.as_user("e2e-user", "e2e-pw", "e2e-proj")
    token = as_user.json("token", "issue")
    assert token["project_id"] == project["id"] and token["user_id"] == user["id"]
    # a member cannot create a user
    denied = as_user.run("user", "create", "nope", "--password", "x", check=False)
    assert denied.returncode != 0
    assert "403" in denied.stderr or "not authorized" in denied.stderr


def _admin_setup_reader(site_process) -> None:
    """Set up over plain HTTP (fast): the CLI part of the test is the refusal."""
    base = f"{site_process.url}/identity/v3"
    auth = {
        "identity": {
            "methods": ["password"],
            "password": {
                "user": {"name": "admin", "domain": {"id": "default"},
                         "password": site_process.password},
            },
        },
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}},
    }  # fmt: skip
    with httpx.Client(timeout=30) as http:
        token = http.post(f"{base}/auth/tokens", json={"auth": auth}).headers["x-subject-token"]
        h = {"X-Auth-Token": token}
        project = http.post(f"{base}/projects", json={"project": {"name": "e2e-read"}}, headers=h)
        user = http.post(
            f"{base}/users", json={"user": {"name": "e2e-reader", "password": "r-pw"}}, headers=h
        )
        (role,) = http.get(f"{base}/roles", params={"name": "reader"}, headers=h).json()["roles"]
        r = http.put(
            f"{base}/projects/{project.json()['project']['id']}/users/"
            f"{user.json()['user']['id']}/roles/{role['id']}",
            headers=h,
        )
        assert r.status_code == 204


def test_reader_cannot_create_a_project(osc, site_process):
    _admin_setup_reader(site_process)
    reader = osc.as_user("e2e-reader", "r-pw", "e2e-read")
    denied = reader.run("project", "create", "nope", check=False)
    assert denied.returncode != 0
    assert "403" in denied.stderr or "not authorized" in denied.stderr


def test_openstacksdk_lists_identity_resources(site_process):
    conn = openstack.connect(
        auth_url=site_process.auth_url,
        username="admin",
        password=site_process.password,
        project_name="admin",
        user_domain_name="Default",
        project_domain_name="Default",
        region_name=site_process.name,
        identity_api_version="3",
    )
    try:
        assert "admin" in {p.name for p in conn.identity.projects()}
        assert "admin" in {u.name for u in conn.identity.users()}
        assert {"admin", "member", "reader"} <= {r.name for r in conn.identity.roles()}
        assert conn.identity.find_project("admin").domain_id == "default"
    finally:
        conn.close()
    # version discovery from the unversioned URL (300 Multiple Choices)
    unversioned = openstack.connect(
        auth_url=f"{site_process.url}/identity",
        username="admin",
        password=site_process.password,
        project_name="admin",
        user_domain_name="Default",
        project_domain_name="Default",
        region_name=site_process.name,
    )
    try:
        assert unversioned.identity.get_project(unversioned.current_project_id).name == "admin"
    finally:
        unversioned.close()


def test_tokens_survive_a_restart_and_revocations_too(site_process):
    """Keys persist in data_dir/keys and revocation events in the database."""
    base = f"{site_process.url}/identity/v3"
    auth = {
        "identity": {
            "methods": ["password"],
            "password": {
                "user": {"name": "admin", "domain": {"id": "default"},
                         "password": site_process.password},
            },
        },
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}},
    }  # fmt: skip
    with httpx.Client(timeout=30) as http:
        kept = http.post(f"{base}/auth/tokens", json={"auth": auth}).headers["x-subject-token"]
        gone = http.post(f"{base}/auth/tokens", json={"auth": auth}).headers["x-subject-token"]
        r = http.delete(
            f"{base}/auth/tokens", headers={"X-Auth-Token": kept, "X-Subject-Token": gone}
        )
        assert r.status_code == 204
    site_process.restart()
    base = f"{site_process.url}/identity/v3"
    with httpx.Client(timeout=30) as http:
        r = http.get(f"{base}/auth/tokens", headers={"X-Auth-Token": kept, "X-Subject-Token": kept})
        assert r.status_code == 200
        r = http.get(f"{base}/auth/catalog", headers={"X-Auth-Token": gone})
        assert r.status_code == 401
