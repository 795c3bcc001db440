"""A token from another fleet site creates the user, project and roles here, once."""

from __future__ import annotations

from pathlib import Path

from edgefed.core.ids import predictable_id
from edgefed.testkit.inprocess_fleet import admin, fleet


async def test_remote_token_creates_shadow_identity_idempotently(tmp_path: Path) -> None:
    async with fleet(tmp_path, ["Berlin", "Denver"], joined=True) as s:
        berlin, denver = s["Berlin"], s["Denver"]
        h = admin(berlin)
        r = await berlin.client.post(
            "/identity/v3/projects", json={"project": {"name": "research"}}, headers=h
        )
        project_id = r.json()["project"]["id"]
        r = await berlin.client.post(
            "/identity/v3/users",
            json={
                "user": {
                    "name": "alice",
                    "password": "alice-pw-1",
                    "default_project_id": project_id,
                }
            },
            headers=h,
        )
        user_id = r.json()["user"]["id"]
        roles = (await berlin.client.get("/identity/v3/roles?name=member", headers=h)).json()[
            "roles"
        ]
        r = await berlin.client.put(
            f"/identity/v3/projects/{project_id}/users/{user_id}/roles/{roles[0]['id']}", headers=h
        )
        assert r.status_code == 204
        alice = {"X-Auth-Token": await berlin.token("alice", "alice-pw-1", "research")}

        # Denver has never heard of alice; her Berlin token works there all the same.
        assert (
            await denver.client.get(f"/identity/v3/users/{user_id}", headers=admin(denver))
        ).status_code == 404
        for _ in range(2):  # idempotent
            r = await denver.client.get("/compute/v2.1/servers", headers=alice)
            assert r.status_code == 200, r.text

        dh = admin(denver)
        user = (await denver.client.get(f"/identity/v3/users/{user_id}", headers=dh)).json()["user"]
        assert user["name"] == "alice" and user_id == predictable_id("user", "alice")
        project = (
            await denver.client.get(f"/identity/v3/projects/{project_id}", headers=dh)
        ).json()
        assert project["project"]["name"] == "research"
        r = await denver.client.get(
            f"/identity/v3/role_assignments?user.id={user_id}&include_names=true", headers=dh
        )
        names = sorted(a["role"]["name"] for a in r.json()["role_assignments"])
        assert "member" in names and len(names) == len(set(names))
        # Credentials stay in Berlin: no password login for alice at Denver.
        r = await denver.client.post(
            "/identity/v3/auth/tokens",
            json={
                "auth": {
                    "identity": {
                        "methods": ["password"],
                        "password": {
                            "user": {
                                "name": "alice",
                                "domain": {"id": "default"},
                                "password": "alice-pw-1",
                            }
                        },
                    }
                }
            },
        )
        assert r.status_code == 401
        # The shadow is Berlin's: a local edit at Denver is refused, naming Berlin.
        r = await denver.client.patch(
            f"/identity/v3/users/{user_id}", json={"user": {"name": "mallory"}}, headers=dh
        )
        assert r.status_code == 409 and "Berlin" in r.text
