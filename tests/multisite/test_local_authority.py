"""A token from another site proves who, never what: roles come from what this site holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgefed.core.ids import predictable_id
from edgefed.testkit.hostile import HostileSite
from edgefed.testkit.inprocess import InProcessSite
from edgefed.testkit.inprocess_fleet import admin, ctx_of, fleet


async def make_user(site: InProcessSite, name: str, password: str, project: str) -> str:
    """A user with the member role on a new project of that name, at ``site``."""
    h = admin(site)
    r = await site.client.post("/identity/v3/projects", json={"project": {"name": project}},
                               headers=h)  # fmt: skip
    assert r.status_code == 201, r.text
    project_id = r.json()["project"]["id"]
    r = await site.client.post(
        "/identity/v3/users",
        json={"user": {"name": name, "password": password, "default_project_id": project_id}},
        headers=h,
    )
    assert r.status_code == 201, r.text
    user_id: str = r.json()["user"]["id"]
    member = predictable_id("role", "member", domain_id="")
    r = await site.client.put(
        f"/identity/v3/projects/{project_id}/users/{user_id}/roles/{member}", headers=h
    )
    assert r.status_code == 204, r.text
    return user_id


async def servers(site: InProcessSite, token: str) -> Any:
    return await site.client.get("/compute/v2.1/servers", headers={"X-Auth-Token": token})


async def test_a_foreign_token_proves_identity_not_authority(tmp_path: Path) -> None:
    async with fleet(tmp_path, ["Berlin", "Denver"], joined=True, trust_admins=False) as s:
        berlin, denver = s["Berlin"], s["Denver"]
        user_id = await make_user(berlin, "alice", "alice-pw-1", "research")
        await denver.client.post(
            "/identity/v3/projects", json={"project": {"name": "research"}}, headers=admin(denver)
        )
        alice = await berlin.token("alice", "alice-pw-1", "research")
        assert (await servers(berlin, alice)).status_code == 200

        # Denver holds nothing for alice: her Berlin token authenticates, and grants nothing.
        r = await servers(denver, alice)
        assert r.status_code == 403, r.text
        # And leaves no trace there.
        r = await denver.client.get(f"/identity/v3/users/{user_id}", headers=admin(denver))
        assert r.status_code == 404

        # Denver's operator maps Berlin's alice to member on research: now she may.
        r = await denver.client.post(
            "/identity/v3/OS-EDGE/mappings",
            json={
                "mapping": {
                    "site": "Berlin",
                    "user": "alice",
                    "role": "member",
                    "project": "research",
                }
            },  # fmt: skip
            headers=admin(denver),
        )
        assert r.status_code == 201, r.text
        mapping_id = r.json()["mapping"]["id"]
        assert (await servers(denver, alice)).status_code == 200
        # Her token, validated at Denver, shows the roles she has at Denver.
        r = await denver.client.get(
            "/identity/v3/auth/tokens", headers={"X-Auth-Token": alice, "X-Subject-Token": alice}
        )
        assert sorted(x["name"] for x in r.json()["token"]["roles"]) == ["member", "reader"]
        # She is recorded (bookkeeping: Berlin's user, no password, no roles) ...
        dh = admin(denver)
        user = (await denver.client.get(f"/identity/v3/users/{user_id}", headers=dh)).json()
        assert user["user"]["name"] == "alice"
        r = await denver.client.get(f"/identity/v3/role_assignments?user.id={user_id}",
                                    headers=dh)  # fmt: skip
        assert r.json()["role_assignments"] == []
        # ... which never lets her log in at Denver, nor rescope her Berlin token there.
        r = await denver.client.post(
            "/identity/v3/auth/tokens",
            json={"auth": {"identity": {"methods": ["token"], "token": {"id": alice}}}},
        )
        assert r.status_code == 401
        # Deleting the rule takes the role away at once.
        r = await denver.client.delete(f"/identity/v3/OS-EDGE/mappings/{mapping_id}", headers=dh)
        assert r.status_code == 204
        assert (await servers(denver, alice)).status_code == 403


async def test_role_claims_of_another_site_are_ignored(tmp_path: Path) -> None:
    async with fleet(tmp_path, ["Berlin", "Denver"], joined=True, trust_admins=False) as s:
        berlin, denver = s["Berlin"], s["Denver"]
        paris_like = HostileSite(name="Berlin", key=ctx_of(berlin).signer.private_key)
        # Berlin's key signs a token for a user that exists nowhere, claiming admin.
        mallory = paris_like.token(user="mallory", roles=("admin", "member", "reader"))
        r = await denver.client.get("/identity/v3/users", headers={"X-Auth-Token": mallory})
        assert r.status_code == 403, r.text
        r = await denver.client.post(
            "/identity/v3/users",
            json={"user": {"name": "backdoor", "password": "x" * 12}},
            headers={"X-Auth-Token": mallory},
        )
        assert r.status_code == 403, r.text
        # Nor does a token for Denver's own admin: Berlin does not speak for Denver's users.
        fake_admin = paris_like.token(user="admin", roles=("admin",))
        r = await denver.client.get("/identity/v3/users", headers={"X-Auth-Token": fake_admin})
        assert r.status_code == 403, r.text


async def test_a_mapped_user_colliding_with_a_local_one_acts_under_its_own_id(
    tmp_path: Path,
) -> None:
    async with fleet(tmp_path, ["Berlin", "Denver"], joined=True) as s:
        berlin, denver = s["Berlin"], s["Denver"]
        # Both sites have an "admin" (same predictable id); the fleet maps admins.
        denver_admin = admin(denver)
        r = await denver.client.post(
            "/compute/v2.1/os-keypairs",
            json={"keypair": {"name": "denver-only", "public_key": _SSH_KEY}},
            headers=denver_admin,
        )
        assert r.status_code in (200, 201), r.text
        berlin_admin = {"X-Auth-Token": await berlin.token()}
        r = await denver.client.get("/compute/v2.1/os-keypairs", headers=berlin_admin)
        assert r.status_code == 200, r.text
        assert r.json()["keypairs"] == []  # Denver's admin's keypairs are not Berlin's
        r = await denver.client.get("/compute/v2.1/os-keypairs", headers=denver_admin)
        assert [k["keypair"]["name"] for k in r.json()["keypairs"]] == ["denver-only"]


_SSH_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGc2f8sVvQZ0n0z3Y0o7l4bq5rR2m6f7m1m1bqf5n7Dz test@edge"
)
