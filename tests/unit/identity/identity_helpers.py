"""Small helpers for the identity tests: create things as admin, log in as someone."""

from __future__ import annotations

from typing import Any

import httpx

from edgefed.testkit.auth import password_auth

V3 = "/identity/v3"


async def create(
    client: httpx.AsyncClient, headers: dict[str, str], kind: str, **fields: Any
) -> dict[str, Any]:
    r = await client.post(f"{V3}/{kind}s", json={kind: fields}, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()[kind]


async def role_id(client: httpx.AsyncClient, headers: dict[str, str], name: str) -> str:
    r = await client.get(f"{V3}/roles", params={"name": name}, headers=headers)
    (role,) = r.json()["roles"]
    return str(role["id"])


async def grant(
    client: httpx.AsyncClient, headers: dict[str, str], *, project: str, user: str, role: str
) -> None:
    rid = await role_id(client, headers, role)
    r = await client.put(f"{V3}/projects/{project}/users/{user}/roles/{rid}", headers=headers)
    assert r.status_code == 204, r.text


async def login(
    client: httpx.AsyncClient, user: str, password: str, project: str | None = None
) -> httpx.Response:
    return await client.post(f"{V3}/auth/tokens", json=password_auth(user, password, project))


async def user_with_role(
    client: httpx.AsyncClient, headers: dict[str, str], *, name: str, role: str, project: str
) -> dict[str, str]:
    """A new user holding ``role`` on ``project`` (by name), and its token headers."""
    projects = (
        await client.get(f"{V3}/projects", params={"name": project}, headers=headers)
    ).json()
    if projects["projects"]:
        project_id = projects["projects"][0]["id"]
    else:
        project_id = (await create(client, headers, "project", name=project))["id"]
    user = await create(client, headers, "user", name=name, password=f"{name}-pw")
    await grant(client, headers, project=project_id, user=user["id"], role=role)
    r = await login(client, name, f"{name}-pw", project)
    assert r.status_code == 201, r.text
    return {"X-Auth-Token": r.headers["x-subject-token"]}
