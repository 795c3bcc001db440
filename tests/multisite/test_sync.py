"""Sync between in-process sites: marks, registration, delivery, locks, deletes, partitions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from edgefed.testkit.asgi_fleet import FleetTransport
from edgefed.testkit.inprocess import InProcessSite
from edgefed.testkit.inprocess_fleet import admin, fleet

PASSWORD = "s3cret-Passw0rd"


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)  # bounded poll of a condition, not a synchronisation sleep
    raise AssertionError(f"condition not met within {within} s")


async def post(site: InProcessSite, path: str, body: Any, status: int = 201) -> Any:
    r = await site.client.post(path, json=body, headers=admin(site))
    assert r.status_code == status, r.text
    return r.json() if r.content else None


async def register(receiver: InProcessSite, source: str) -> None:
    await post(receiver, "/edge/v1/sync/registrations", {"registration": {"source": source}})


async def create_identity(site: InProcessSite, name: str) -> tuple[str, str]:
    project = await post(site, "/identity/v3/projects", {"project": {"name": f"{name}-proj"}})
    user = await post(
        site,
        "/identity/v3/users",
        {
            "user": {
                "name": name,
                "password": PASSWORD,
                "default_project_id": project["project"]["id"],
            }
        },
    )
    roles = (await site.client.get("/identity/v3/roles?name=member", headers=admin(site))).json()
    role_id = roles["roles"][0]["id"]
    pid, uid = project["project"]["id"], user["user"]["id"]
    r = await site.client.put(
        f"/identity/v3/projects/{pid}/users/{uid}/roles/{role_id}", headers=admin(site)
    )
    assert r.status_code == 204, r.text
    return pid, uid


async def can_login(site: InProcessSite, user: str, project: str) -> bool:
    try:
        await site.token(user=user, password=PASSWORD, project=project)
        return True
    except Exception:
        return False


async def mark(site: InProcessSite, kind: str, key: str, to: str = "*") -> None:
    await post(site, "/edge/v1/sync/marks", {"mark": {"kind": kind, "id": key, "to": to}})


async def test_user_project_assignment_reach_receivers_and_are_locked(tmp_path: Path) -> None:
    async with fleet(tmp_path, ["Berlin", "Denver", "Paris"], joined=True) as sites:
        berlin, denver, paris = sites["Berlin"], sites["Denver"], sites["Paris"]
        await register(denver, "Berlin")
        pid, uid = await create_identity(berlin, "alice")
        await mark(berlin, "project", pid)
        await mark(berlin, "user", uid)
        await register(paris, "Berlin")  # registers after the marks: full sync
        for receiver in (denver, paris):
            await eventually(lambda r=receiver: can_login(r, "alice", "alice-proj"))
        # Received data is locked at the receiver: 409 naming the source.
        r = await denver.client.patch(
            f"/identity/v3/users/{uid}", json={"user": {"enabled": False}}, headers=admin(denver)
        )
        assert r.status_code == 409, r.text
        assert "Berlin" in r.text
        # An edit at the source propagates; a delete at the source deletes at receivers.
        r = await berlin.client.patch(
            f"/identity/v3/projects/{pid}",
            json={"project": {"description": "v2"}},
            headers=admin(berlin),
        )
        assert r.status_code == 200, r.text

        async def described() -> bool:
            r = await paris.client.get(f"/identity/v3/projects/{pid}", headers=admin(paris))
            return r.status_code == 200 and r.json()["project"]["description"] == "v2"

        await eventually(described)
        r = await berlin.client.delete(f"/identity/v3/users/{uid}", headers=admin(berlin))
        assert r.status_code == 204, r.text

        async def user_gone() -> bool:
            r = await denver.client.get(f"/identity/v3/users/{uid}", headers=admin(denver))
            return r.status_code == 404

        await eventually(user_gone)
        assert not await can_login(denver, "alice", "alice-proj")


async def test_partitioned_receiver_converges_after_heal(tmp_path: Path) -> None:
    transport = FleetTransport()
    async with fleet(tmp_path, ["Berlin", "Denver"], joined=True, transport=transport) as sites:
        berlin, denver = sites["Berlin"], sites["Denver"]
        await register(denver, "Berlin")
        await post(
            berlin, "/edge/v1/sync/marks", {"mark": {"kind": "project", "id": "*", "to": "*"}}
        )
        transport.cut.add("denver.test")
        pid, _ = await create_identity(berlin, "bob")
        # Both sides keep serving local operations during the cut.
        await post(denver, "/identity/v3/projects", {"project": {"name": "denver-local"}})

        async def failing() -> bool:
            r = await berlin.client.get("/edge/v1/sync/progress", headers=admin(berlin))
            t = r.json()["progress"]["targets"].get("Denver", {})
            return t.get("failing", 0) > 0

        await eventually(failing)
        transport.cut.discard("denver.test")

        async def arrived() -> bool:
            r = await denver.client.get(f"/identity/v3/projects/{pid}", headers=admin(denver))
            return r.status_code == 200

        await eventually(arrived, within=20)


async def test_receiver_rejects_inconsistent_data(tmp_path: Path) -> None:
    async with fleet(tmp_path, ["Berlin", "Denver"], joined=True) as sites:
        berlin, denver = sites["Berlin"], sites["Denver"]
        await register(denver, "Berlin")
        from edgefed.sync.peers import signed_call
        from edgefed.testkit.inprocess_fleet import ctx_of

        item = {
            "kind": "quota",
            "key": "project|no-such-project|cores",
            "version": 7,
            "op": "upsert",
            "row": {
                "kind": "project",
                "owner": "no-such-project",
                "resource": "cores",
                "hard_limit": 5,
            },
        }
        r = await signed_call(
            ctx_of(berlin), "Denver", "POST", "/edge/v1/sync/push", {"items": [item]}
        )
        assert r.status_code == 422, r.text
        result = r.json()["results"][0]
        assert result["status"] == "rejected"
        assert "project no-such-project" in result["error"]
