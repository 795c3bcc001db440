"""Sync between in-process sites: marks, registration, delivery, locks, deletes, partitions."""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgefed.services.fleet.monitor import HealthMonitor
from edgefed.sync.peers import signed_call
from edgefed.sync.state import SyncEngine
from edgefed.testkit.asgi_fleet import FleetTransport
from edgefed.testkit.inprocess import InProcessSite
from edgefed.testkit.inprocess_fleet import admin, ctx_of
from edgefed.testkit.inprocess_fleet import fleet as inprocess_fleet
from edgefed.testkit.postgres import PostgresServer
from edgefed.testkit.wait import eventually

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


async def post(site: InProcessSite, path: str, body: Any, status: int = 201) -> Any:
    r = await site.client.post(path, json=body, headers=admin(site))
    assert r.status_code == status, r.text
    return r.json() if r.content else None


async def register(receiver: InProcessSite, source: InProcessSite) -> None:
    """The receiver's admin asks, then the source's admin accepts (both operators)."""
    name = ctx_of(source).name
    reg = await post(receiver, "/edge/v1/sync/registrations", {"registration": {"source": name}})
    if reg["registration"]["status"] == "pending":
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
        telemetry = ctx_of(berlin).slots.require(SyncEngine).telemetry

        async def telemetry_shows_failing() -> bool:
            return telemetry.report()["peers"].get("Denver", {}).get("failing", 0) > 0

        await eventually(telemetry_shows_failing)
        seen = telemetry.report()
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
            now = telemetry.report()
            return now["queue_depth"] == 0 and now["lag_seconds"] == 0.0

        await eventually(drained)
        assert telemetry.report()["peers"]["Denver"]["breaker"] == "closed"


async def test_receiver_rejects_inconsistent_data(tmp_path: Path) -> None:
    async with fleet(tmp_path, ["Berlin", "Denver"], joined=True) as sites:
        berlin, denver = sites["Berlin"], sites["Denver"]
        await register(denver, berlin)
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

        async def settled() -> bool:
            # An acknowledgement is written once the push's answer is back, a little after
            # the receiver committed: wait for both levels to count the row as done.
            r = await central.client.get("/edge/v1/sync/progress", headers=admin(central))
            tree = r.json()["progress"]
            children = tree["children"]
            return (
                tree["targets"]["Regional"]["done"] >= 1
                and len(children) == 1
                and children[0]["targets"].get("Edge", {}).get("done", 0) >= 1
            )

        await eventually(settled)
        r = await central.client.get("/edge/v1/sync/progress", headers=admin(central))
        (regional_report,) = r.json()["progress"]["children"]
        assert regional_report["site"] == "Regional"
        (edge_report,) = regional_report["children"]
        assert edge_report["site"] == "Edge" and edge_report["reachable"]


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


# ---- issue 12 item 4: sync takes only what it was given ------------------------------


async def signed(site: InProcessSite, to: str, method: str, path: str, body: Any = None) -> Any:
    """A site-to-site call as ``site`` makes it (signed with its key)."""
    return await signed_call(ctx_of(site), to, method, path, body)


async def routed(site: InProcessSite) -> None:
    """Until the source's change router has consumed its change log."""
    engine = ctx_of(site).slots.require(SyncEngine)
    for _ in range(100):  # bounded: a page per call
        if not await engine.router.route_once():
            return
    raise AssertionError("the change log did not drain")


async def holds_project(site: InProcessSite, pid: str) -> bool:
    r = await site.client.get(f"/identity/v3/projects/{pid}", headers=admin(site))
    return r.status_code == 200


async def test_registration_waits_for_the_sources_operator(tmp_path: Path) -> None:
    async with fleet(tmp_path, ["Berlin", "Denver", "Paris"], joined=True) as sites:
        berlin, denver, paris = sites["Berlin"], sites["Denver"], sites["Paris"]
        reg = await post(
            denver, "/edge/v1/sync/registrations", {"registration": {"source": "Berlin"}}
        )
        assert reg["registration"]["status"] == "pending"
        assert "edgefed sync accept Denver" in reg["registration"]["message"]
        r = await berlin.client.get("/edge/v1/sync/receivers", headers=admin(berlin))
        assert [(x["name"], x["state"]) for x in r.json()["receivers"]] == [("Denver", "pending")]
        r = await berlin.client.get("/edge/v1/sync/registrations", headers=admin(berlin))
        assert r.json()["receivers"] == [] and r.json()["pending"] == ["Denver"]

        pid = (await post(berlin, "/identity/v3/projects", {"project": {"name": "ops"}}))[
            "project"
        ]["id"]
        await mark(berlin, "project", pid)
        await routed(berlin)
        # Pending: nothing queued for Denver, and it may not pull.
        assert await ctx_of(berlin).slots.require(SyncEngine).repo.entries(target="Denver") == []
        r = await signed(
            denver, "Berlin", "POST", "/edge/v1/sync/pull", {"kind": "project", "id": pid}
        )
        assert r.status_code == 403, r.text
        r = await berlin.client.get("/edge/v1/sync/progress?depth=0", headers=admin(berlin))
        report = r.json()["progress"]
        assert "Denver" not in report["targets"]
        assert report["registrations"] == [{"receiver": "Denver", "state": "pending"}]

        r = await berlin.client.post("/edge/v1/sync/receivers/Denver/accept", headers=admin(berlin))
        assert r.status_code == 200, r.text
        assert r.json()["receiver"]["state"] == "accepted" and r.json()["receiver"]["queued"] >= 1
        await eventually(lambda: holds_project(denver, pid))

        # Accepted ahead: Paris's request is accepted at once, and served.
        r = await berlin.client.post("/edge/v1/sync/receivers/Paris/accept", headers=admin(berlin))
        assert r.json()["receiver"]["state"] == "approved"
        reg = await post(
            paris, "/edge/v1/sync/registrations", {"registration": {"source": "Berlin"}}
        )
        assert reg["registration"]["status"] == "active"
        await eventually(lambda: holds_project(paris, pid))
        # Refused: Paris is no longer served; refusing a stranger is a 404.
        r = await berlin.client.delete("/edge/v1/sync/receivers/Paris", headers=admin(berlin))
        assert r.status_code == 204, r.text
        r = await signed(
            paris, "Berlin", "POST", "/edge/v1/sync/pull", {"kind": "project", "id": pid}
        )
        assert r.status_code == 403, r.text
        r = await berlin.client.delete("/edge/v1/sync/receivers/Tokyo", headers=admin(berlin))
        assert r.status_code == 404
        r = await berlin.client.post("/edge/v1/sync/receivers/..%2Fx/accept", headers=admin(berlin))
        assert r.status_code in (400, 404)


async def test_a_receiver_gets_only_what_is_marked_for_it(tmp_path: Path) -> None:
    data = os.urandom(100_000)
    sha = hashlib.sha256(data).hexdigest()
    async with fleet(tmp_path, ["Berlin", "Denver", "Paris"], joined=True) as sites:
        berlin, denver, paris = sites["Berlin"], sites["Denver"], sites["Paris"]
        await register(denver, berlin)
        await register(paris, berlin)
        marked = (await post(berlin, "/identity/v3/projects", {"project": {"name": "for-d"}}))[
            "project"
        ]["id"]
        unmarked = (await post(berlin, "/identity/v3/projects", {"project": {"name": "secret"}}))[
            "project"
        ]["id"]
        await mark(berlin, "project", marked, to="Denver")
        image = await post(
            berlin, "/image/v2/images",
            {"name": "paris-only", "disk_format": "raw", "container_format": "bare"},
        )  # fmt: skip
        r = await berlin.client.put(
            f"/image/v2/images/{image['id']}/file",
            content=data,
            headers={**admin(berlin), "Content-Type": "application/octet-stream"},
        )
        assert r.status_code == 204, r.text
        await mark(berlin, "image", image["id"], to="Paris")

        async def pull(site: InProcessSite, kind: str, key: str) -> int:
            r = await signed(
                site, "Berlin", "POST", "/edge/v1/sync/pull", {"kind": kind, "id": key}
            )
            return int(r.status_code)

        assert await pull(denver, "project", marked) == 202
        assert await pull(denver, "project", unmarked) == 404
        assert await pull(denver, "image", image["id"]) == 404
        assert await pull(denver, "project", "no-such-project") == 404  # the same answer
        r = await signed(denver, "Berlin", "GET", f"/edge/v1/sync/blobs/{sha}")
        assert r.status_code == 404, r.text
        r = await signed(paris, "Berlin", "GET", f"/edge/v1/sync/blobs/{sha}")
        assert r.status_code == 200 and r.content == data
        r = await signed(paris, "Berlin", "GET", "/edge/v1/sync/blobs/" + "A" * 64)
        assert r.status_code == 400
        assert not await holds_project(denver, unmarked)
        # Reports go to sources only, each seeing only what it delivered.
        r = await signed(denver, "Berlin", "GET", "/edge/v1/sync/progress/report")
        assert r.status_code == 403, r.text
        r = await signed(berlin, "Denver", "GET", "/edge/v1/sync/progress/report")
        assert r.status_code == 200 and r.json()["sources"] == ["Berlin"]


async def test_a_clash_is_recorded_shown_and_resolved(tmp_path: Path) -> None:
    async with fleet(tmp_path, ["Berlin", "Denver"], joined=True) as sites:
        berlin, denver = sites["Berlin"], sites["Denver"]
        ids = {}
        for name in ("demo", "ops", "keep"):
            local = await post(
                denver, "/identity/v3/projects",
                {"project": {"name": name, "description": "Denver's own"}},
            )  # fmt: skip
            theirs = await post(
                berlin, "/identity/v3/projects",
                {"project": {"name": name, "description": "Berlin's"}},
            )  # fmt: skip
            assert local["project"]["id"] == theirs["project"]["id"]  # predictable IDs
            ids[name] = theirs["project"]["id"]
            await mark(berlin, "project", ids[name])
        await register(denver, berlin)

        async def conflicts() -> list[dict[str, Any]]:
            r = await denver.client.get("/edge/v1/sync/conflicts", headers=admin(denver))
            assert r.status_code == 200, r.text
            found: list[dict[str, Any]] = r.json()["conflicts"]
            return found

        async def three() -> bool:
            return len(await conflicts()) == 3

        await eventually(three)
        demo = next(c for c in await conflicts() if c["id"] == ids["demo"])
        assert demo["source"] == "Berlin" and demo["kind"] == "project"
        assert demo["held"] == {"kind": "project", "id": ids["demo"], "origin": None}
        for name in ids:  # nothing overwritten
            r = await denver.client.get(f"/identity/v3/projects/{ids[name]}", headers=admin(denver))
            assert r.json()["project"]["description"] == "Denver's own"

        # Shown at the source, in its progress tree (parked rows and the receiver's record).
        async def parked() -> bool:
            r = await berlin.client.get("/edge/v1/sync/progress", headers=admin(berlin))
            return bool(r.json()["progress"]["targets"]["Denver"]["conflict"] == 3)

        await eventually(parked)
        r = await berlin.client.get("/edge/v1/sync/progress", headers=admin(berlin))
        tree = r.json()["progress"]
        assert {f["state"] for f in tree["failing"]} == {"conflict"}
        (child,) = tree["children"]
        assert {c["id"] for c in child["conflicts"]} == set(ids.values())
        # ... in the receiver's telemetry, and as an alarm there.
        telemetry = ctx_of(denver).slots.require(SyncEngine).telemetry
        await telemetry.refresh()
        assert telemetry.report()["conflicts_by_source"] == {"Berlin": 3}
        monitor = HealthMonitor(ctx_of(denver))
        await monitor.tick(probe=False)
        r = await denver.client.get("/edge/v1/alarms?type=sync_conflict", headers=admin(denver))
        (alarm,) = r.json()["alarms"]
        assert alarm["entity"] == "site=Berlin" and "3 rows" in alarm["reason"]

        async def resolve(name: str, **how: bool) -> httpx.Response:
            body = {"resolve": {"source": "Berlin", "kind": "project", "id": ids[name], **how}}
            r: httpx.Response = await denver.client.post(
                "/edge/v1/sync/conflicts/resolve", json=body, headers=admin(denver)
            )
            return r

        async def described(name: str, text: str) -> bool:
            r = await denver.client.get(f"/identity/v3/projects/{ids[name]}", headers=admin(denver))
            return r.status_code == 200 and r.json()["project"]["description"] == text

        r = await resolve("demo")
        assert r.status_code == 409 and "still here" in r.text  # delete it, or adopt
        r = await resolve("demo", adopt=True)
        assert r.status_code == 200 and r.json()["resolved"]["resolution"] == "adopted"
        await eventually(lambda: described("demo", "Berlin's"))
        r = await denver.client.delete(
            f"/identity/v3/projects/{ids['demo']}", headers=admin(denver)
        )
        assert r.status_code == 409 and "Berlin" in r.text  # Berlin's now: locked here

        r = await denver.client.delete(f"/identity/v3/projects/{ids['ops']}", headers=admin(denver))
        assert r.status_code == 204
        r = await resolve("ops")
        assert r.status_code == 200 and r.json()["resolved"]["resolution"] == "requested"
        await eventually(lambda: described("ops", "Berlin's"))

        r = await resolve("keep", dismiss=True)
        assert r.status_code == 200
        assert await described("keep", "Denver's own")
        assert await conflicts() == []
        await telemetry.refresh()
        await monitor.tick(probe=False)
        r = await denver.client.get("/edge/v1/alarms?type=sync_conflict", headers=admin(denver))
        assert r.json()["alarms"] == []
        r = await resolve("keep")
        assert r.status_code == 404


async def test_a_push_that_takes_rights_away_revokes_tokens_issued_here(tmp_path: Path) -> None:
    async with fleet(tmp_path, ["Berlin", "Denver"], joined=True) as sites:
        berlin, denver = sites["Berlin"], sites["Denver"]
        await register(denver, berlin)
        pid, uid = await create_identity(berlin, "erin")
        await create_identity(berlin, "frank")
        for name in ("erin", "frank"):
            r = await berlin.client.get(f"/identity/v3/users?name={name}", headers=admin(berlin))
            await mark(berlin, "user", r.json()["users"][0]["id"])
        await mark(berlin, "project", "*")
        await eventually(lambda: can_login(denver, "erin", "erin-proj"))
        await eventually(lambda: can_login(denver, "frank", "frank-proj"))
        erin = await denver.token(user="erin", password=PASSWORD, project="erin-proj")
        frank = await denver.token(user="frank", password=PASSWORD, project="frank-proj")

        async def works(token: str) -> bool:
            r = await denver.client.get(
                "/identity/v3/auth/tokens",
                headers={"X-Auth-Token": token, "X-Subject-Token": token},
            )
            return r.status_code == 200

        assert await works(erin) and await works(frank)
        # Berlin disables erin and takes frank's role on his project away.
        r = await berlin.client.patch(
            f"/identity/v3/users/{uid}", json={"user": {"enabled": False}}, headers=admin(berlin)
        )
        assert r.status_code == 200, r.text
        r = await berlin.client.get("/identity/v3/users?name=frank", headers=admin(berlin))
        frank_id = r.json()["users"][0]["id"]
        r = await berlin.client.get("/identity/v3/projects?name=frank-proj", headers=admin(berlin))
        frank_project = r.json()["projects"][0]["id"]
        role = await berlin.client.get("/identity/v3/roles?name=member", headers=admin(berlin))
        role_id = role.json()["roles"][0]["id"]
        r = await berlin.client.delete(
            f"/identity/v3/projects/{frank_project}/users/{frank_id}/roles/{role_id}",
            headers=admin(berlin),
        )
        assert r.status_code == 204, r.text

        async def refused(token: str) -> bool:
            return not await works(token)

        await eventually(lambda: refused(erin))
        await eventually(lambda: refused(frank))
        assert pid  # erin's project stays


class OversizedBlobs(FleetTransport):
    """A fleet transport whose blob downloads send far more than the image's size (what a
    compromised source would do to fill a receiver's disk), counting what was read."""

    def __init__(self) -> None:
        super().__init__()
        self.tamper = True
        self.sent = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if "/edge/v1/sync/blobs/" not in request.url.path or not self.tamper:
            return response
        await response.aread()
        outer = self

        class Endless(httpx.AsyncByteStream):
            async def __aiter__(self):  # type: ignore[override]
                for _ in range(64):
                    outer.sent += 1 << 20
                    yield b"\0" * (1 << 20)

        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        return httpx.Response(200, headers=headers, stream=Endless())


async def test_a_blob_larger_than_its_image_is_cut_off(tmp_path: Path) -> None:
    transport = OversizedBlobs()
    data = os.urandom(64 * 1024)
    async with fleet(tmp_path, ["Berlin", "Denver"], joined=True, transport=transport) as sites:
        berlin, denver = sites["Berlin"], sites["Denver"]
        await register(denver, berlin)
        image = await post(
            berlin, "/image/v2/images",
            {"name": "small", "disk_format": "raw", "container_format": "bare"},
        )  # fmt: skip
        r = await berlin.client.put(
            f"/image/v2/images/{image['id']}/file",
            content=data,
            headers={**admin(berlin), "Content-Type": "application/octet-stream"},
        )
        assert r.status_code == 204, r.text
        await mark(berlin, "image", image["id"], to="Denver")

        async def pull_failed() -> bool:
            r = await denver.client.get("/edge/v1/sync/progress?depth=0", headers=admin(denver))
            pulls = r.json()["progress"]["images"]
            return bool(pulls) and "more than the 65536 bytes" in str(pulls[0]["last_error"])

        await eventually(pull_failed)
        assert transport.sent <= 2 << 20  # stopped at the first megabyte past the size
        sha = hashlib.sha256(data).hexdigest()
        partial = ctx_of(denver).settings.data_dir / "images" / ".sync" / f"{sha}.part"
        assert not partial.exists()
        transport.tamper = False  # the next attempt gets the real blob

        async def active() -> bool:
            r = await denver.client.get(f"/image/v2/images/{image['id']}", headers=admin(denver))
            return r.status_code == 200 and r.json()["status"] == "active"

        await eventually(active, within=30)
