"""Sync between in-process sites: marks, registration, delivery, locks, deletes, partitions."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgefed.testkit.asgi_fleet import FleetTransport
from edgefed.testkit.inprocess import InProcessSite
from edgefed.testkit.inprocess_fleet import admin, ctx_of
from edgefed.testkit.inprocess_fleet import fleet as inprocess_fleet
from edgefed.testkit.postgres import PostgresServer

PASSWORD = "s3cret-Passw0rd"
DATABASES: PostgresServer | None = None  # set per test by the autouse fixture below


@pytest.fixture(autouse=True)
def _databases(postgres_server: PostgresServer | None) -> Iterator[None]:
    """``--database=postgres``: every site of these fleets gets its own database."""
    global DATABASES
    DATABASES = postgres_server
    yield
    DATABASES = None


@contextlib.asynccontextmanager
async def fleet(
    tmp_path: Path,
    names: list[str],
    *,
    joined: bool = False,
    transport: FleetTransport | None = None,
) -> AsyncIterator[dict[str, InProcessSite]]:
    """edgefed.testkit.inprocess_fleet.fleet, with a database per site on PostgreSQL runs."""

    def database_url(name: str) -> str | None:
        if DATABASES is None:
            return None
        return DATABASES.create_database(f"s_{name.lower()}_{uuid.uuid4().hex[:8]}")

    async with inprocess_fleet(
        tmp_path, names, joined=joined, transport=transport, database_url=database_url
    ) as sites:
        yield sites


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


async def register(receiver: InProcessSite, source: InProcessSite) -> None:
    """The receiver's admin asks, then the source's admin accepts (both operators)."""
    name = ctx_of(source).name
    reg = await post(receiver, "/edge/v1/sync/registrations", {"registration": {"source": name}})
    assert reg["registration"]["status"] == "pending", reg
    receiver_name = ctx_of(receiver).name
    r = await source.client.post(
        f"/edge/v1/sync/receivers/{receiver_name}/accept", headers=admin(source)
    )
    assert r.status_code == 200 and r.json()["receiver"]["state"] == "accepted", r.text


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
        await register(denver, berlin)
        pid, uid = await create_identity(berlin, "alice")
        await mark(berlin, "project", pid)
        await mark(berlin, "user", uid)
        await register(paris, berlin)  # registers after the marks: full sync
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
        await register(denver, berlin)
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
        # The fleet service's telemetry hook sees the failing peer (no I/O in the call).
        telemetry = ctx_of(berlin).services["sync.telemetry"]

        async def telemetry_shows_failing() -> bool:
            return telemetry()["peers"].get("Denver", {}).get("failing", 0) > 0

        await eventually(telemetry_shows_failing)
        seen = telemetry()
        peer = seen["peers"]["Denver"]
        assert seen["queue_depth"] >= peer["pending"] >= peer["failing"] > 0
        assert "cut" in (peer["last_error"] or "")
        assert peer["oldest_pending_seconds"] > 0 and seen["lag_seconds"] > 0
        assert peer["breaker"] in ("closed", "open", "half-open")
        transport.cut.discard("denver.test")

        async def arrived() -> bool:
            r = await denver.client.get(f"/identity/v3/projects/{pid}", headers=admin(denver))
            return r.status_code == 200

        await eventually(arrived, within=20)

        async def drained() -> bool:
            now = telemetry()
            return now["queue_depth"] == 0 and now["lag_seconds"] == 0.0

        await eventually(drained)
        assert telemetry()["peers"]["Denver"]["breaker"] == "closed"


async def test_receiver_rejects_inconsistent_data(tmp_path: Path) -> None:
    async with fleet(tmp_path, ["Berlin", "Denver"], joined=True) as sites:
        berlin, denver = sites["Berlin"], sites["Denver"]
        await register(denver, berlin)
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


class FakeCuttingTransport(FleetTransport):
    """A fleet transport whose first image-blob download dies halfway (a cut link)."""

    def __init__(self) -> None:
        super().__init__()
        self.cuts_left = 1
        self.ranges: list[str | None] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if "/edge/v1/sync/blobs/" not in request.url.path:
            return response
        self.ranges.append(request.headers.get("range"))
        if self.cuts_left == 0:
            return response
        self.cuts_left -= 1
        body = await response.aread()

        class HalfThenCut(httpx.AsyncByteStream):
            async def __aiter__(self):  # type: ignore[override]
                yield body[: len(body) // 2]
                raise httpx.ReadError("link cut (test)", request=request)

        return httpx.Response(response.status_code, headers=response.headers, stream=HalfThenCut())


async def test_image_arrives_byte_identical_after_a_cut_transfer_resumes(tmp_path: Path) -> None:
    transport = FakeCuttingTransport()
    data = os.urandom(3 * 1024 * 1024 + 17)
    async with fleet(tmp_path, ["Berlin", "Denver"], joined=True, transport=transport) as sites:
        berlin, denver = sites["Berlin"], sites["Denver"]
        await register(denver, berlin)
        image = await post(
            berlin,
            "/image/v2/images",
            {"name": "cirros", "disk_format": "qcow2", "container_format": "bare"},
        )
        image_id = image["id"]
        r = await berlin.client.put(
            f"/image/v2/images/{image_id}/file",
            content=data,
            headers={**admin(berlin), "Content-Type": "application/octet-stream"},
        )
        assert r.status_code == 204, r.text
        await mark(berlin, "image", image_id, to="Denver")

        async def active() -> bool:
            r = await denver.client.get(f"/image/v2/images/{image_id}", headers=admin(denver))
            return r.status_code == 200 and r.json()["status"] == "active"

        await eventually(active, within=30)
        r = await denver.client.get(f"/image/v2/images/{image_id}/file", headers=admin(denver))
        assert r.status_code == 200
        assert hashlib.sha256(r.content).digest() == hashlib.sha256(data).digest()
        assert transport.ranges[0] is None
        assert transport.ranges[1] == f"bytes={len(data) // 2}-"  # resumed, not restarted


async def test_three_level_hierarchy_converges_and_top_sees_the_edge(tmp_path: Path) -> None:
    names = ["Central", "Regional", "Edge"]
    async with fleet(tmp_path, names, joined=True) as sites:
        central, regional, edge = (sites[n] for n in names)
        await register(regional, central)
        await register(edge, regional)
        r = await central.client.post(
            "/compute/v2.1/flavors",
            json={"flavor": {"name": "edge.small", "ram": 512, "vcpus": 1, "disk": 1}},
            headers=admin(central),
        )
        assert r.status_code == 200, r.text
        flavor_id = r.json()["flavor"]["id"]
        await mark(central, "flavor", flavor_id, to="*")

        async def at_edge() -> bool:
            r = await edge.client.get(f"/compute/v2.1/flavors/{flavor_id}", headers=admin(edge))
            return r.status_code == 200

        await eventually(at_edge)
        r = await edge.client.delete(f"/compute/v2.1/flavors/{flavor_id}", headers=admin(edge))
        assert r.status_code == 409
        assert "Regional" in r.text  # locked, naming the site it came from

        r = await central.client.get("/edge/v1/sync/progress", headers=admin(central))
        tree = r.json()["progress"]
        assert tree["targets"]["Regional"]["done"] >= 1
        (regional_report,) = tree["children"]
        assert regional_report["site"] == "Regional"
        (edge_report,) = regional_report["children"]
        assert edge_report["site"] == "Edge" and edge_report["reachable"]
        assert regional_report["targets"]["Edge"]["done"] >= 1


async def test_a_receiver_unregisters_and_the_source_stops_pushing(tmp_path: Path) -> None:
    async with fleet(tmp_path, ["Berlin", "Denver", "Paris"], joined=True) as sites:
        berlin, denver, paris = sites["Berlin"], sites["Denver"], sites["Paris"]
        await mark(berlin, "project", "*")
        await register(denver, berlin)
        await register(paris, berlin)
        first = await post(berlin, "/identity/v3/projects", {"project": {"name": "before"}})

        async def holds(pid: str, site: InProcessSite = denver) -> bool:
            r = await site.client.get(f"/identity/v3/projects/{pid}", headers=admin(site))
            return r.status_code == 200

        await eventually(lambda: holds(first["project"]["id"]))
        r = await denver.client.delete("/edge/v1/sync/registrations/Berlin", headers=admin(denver))
        assert r.status_code == 204, r.text
        # Both sides forgot the registration; the source has nothing queued for Denver.
        r = await berlin.client.get("/edge/v1/sync/registrations", headers=admin(berlin))
        assert r.json()["receivers"] == ["Paris"]
        r = await denver.client.get("/edge/v1/sync/registrations", headers=admin(denver))
        assert r.json()["sources"] == []
        r = await berlin.client.get("/edge/v1/sync/progress?depth=0", headers=admin(berlin))
        assert "Denver" not in r.json()["progress"]["targets"]
        # A new change reaches Paris only, and what Denver received before stays.
        later = await post(berlin, "/identity/v3/projects", {"project": {"name": "after"}})
        await eventually(lambda: holds(later["project"]["id"], paris))
        r = await berlin.client.get(
            f"/edge/v1/sync/progress?depth=0&kind=project&id={later['project']['id']}",
            headers=admin(berlin),
        )
        assert [e["target"] for e in r.json()["progress"]["resources"]] == ["Paris"]
        assert not await holds(later["project"]["id"])
        # What Denver received is released: its own now, editable (it was locked: 409).
        r = await denver.client.patch(
            f"/identity/v3/projects/{first['project']['id']}",
            json={"project": {"description": "mine now"}},
            headers=admin(denver),
        )
        assert r.status_code == 200, r.text
        r = await paris.client.patch(
            f"/identity/v3/projects/{first['project']['id']}",
            json={"project": {"description": "still Berlin's"}},
            headers=admin(paris),
        )
        assert r.status_code == 409 and "Berlin" in r.text
        assert await holds(first["project"]["id"])
        # Unregistering again, or from a site that is no source, is a 404 naming it.
        r = await denver.client.delete("/edge/v1/sync/registrations/Berlin", headers=admin(denver))
        assert r.status_code == 404
        assert "not registered with Berlin" in r.json()["error"]["message"]
