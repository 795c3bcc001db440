"""Sync takes only what it was given (issue #12 item 4), against a compromised site.

Three real site processes: Berlin is Denver's sync source; Paris was one too, legitimately
registered by Denver's operator, and has since been taken: ``HostileSite`` holds its
stolen key and signs whatever it likes. Every attack must be refused with a 4xx, leave
the victims' data as it was, and the rest of the fleet must keep serving (Berlin keeps
syncing to Denver). Each test fails on the tree before the fix: Paris registered itself
with Berlin at once and pulled what it wanted; a push overwrote Denver's own rows and
handed Paris's user Denver's admin project; a pushed blob name ``../keys/signing.pem``
made Denver serve its signing key as image data; a blob was read to its end whatever
its announced size; malformed rows were 500s.
"""

from __future__ import annotations

import hashlib
import http.server
import itertools
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from edgefed.core.ids import predictable_id
from edgefed.testkit.fleet_process import ProcessFleet
from edgefed.testkit.hostile import HostileSite
from edgefed.testkit.wait import until

NAMES = ["Berlin", "Denver", "Paris"]
MAX_IMAGE_BYTES = 8 * 1024 * 1024
CONFIG = (
    "sync_backoff_seconds = [0.2, 0.5, 1.0]\n"
    "sync_breaker_threshold = 50\n"  # the attacks must not pause Berlin's deliveries
    f"max_image_bytes = {MAX_IMAGE_BYTES}\n"
)
PUSH = "/edge/v1/sync/push"
ROLE_ADMIN = predictable_id("role", "admin", domain_id="")
DEFAULT = "default"
PASSWORD = "Mall0ry-pw!"
NOW = "2026-01-01T00:00:00"
VERSIONS = itertools.count(10**9)  # Paris's versions only ever grow


@dataclass
class Scene:
    fleet: ProcessFleet
    paris: HostileSite
    ops: str  # Berlin's project, marked for Denver
    secret: str  # Berlin's project, marked for nobody
    private_sha: str  # the blob of Berlin's image marked for nobody

    def admin(self, site: str) -> httpx.Client:
        return self.fleet.client(site, headers={"X-Auth-Token": self.fleet.token(site)})

    def attack(self, site: str, method: str, path: str, payload: Any = None) -> httpx.Response:
        """A request signed with Paris's stolen key, straight to ``site``."""
        body = b"" if payload is None else json.dumps(payload).encode()
        return self.paris.call(
            self.fleet[site].url, target=site, method=method, path=path, body=body,
            headers={"content-type": "application/json"} if payload is not None else None,
        )  # fmt: skip

    def push(self, items: list[dict[str, Any]]) -> httpx.Response:
        return self.attack("Denver", "POST", PUSH, {"items": items})

    def project_of(self, site: str, pid: str) -> dict[str, Any] | None:
        with self.admin(site) as c:
            r = c.get(f"/identity/v3/projects/{pid}")
        return r.json()["project"] if r.status_code == 200 else None

    def fleet_serves(self) -> None:
        """Berlin and Denver answer, and a change at Berlin still reaches Denver."""
        with self.admin("Berlin") as berlin:
            name = f"still-{time.monotonic_ns()}"
            pid = berlin.post("/identity/v3/projects", json={"project": {"name": name}}).json()[
                "project"
            ]["id"]
            r = berlin.post(
                "/edge/v1/sync/marks", json={"mark": {"kind": "project", "id": pid, "to": "Denver"}}
            )
            assert r.status_code == 201, r.text
        until(lambda: self.project_of("Denver", pid) is not None, what="Berlin's change at Denver")


def register(fleet: ProcessFleet, receiver: str, source: str) -> None:
    """Both operators: the receiver's asks, the source's accepts."""
    with fleet.client(receiver, headers={"X-Auth-Token": fleet.token(receiver)}) as c:
        r = c.post("/edge/v1/sync/registrations", json={"registration": {"source": source}})
        assert r.status_code == 201, r.text
        pending = r.json()["registration"]["status"] == "pending"
    if pending:
        with fleet.client(source, headers={"X-Auth-Token": fleet.token(source)}) as c:
            r = c.post(f"/edge/v1/sync/receivers/{receiver}/accept")
            assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    fleet = ProcessFleet(
        root=tmp_path_factory.mktemp("hostile-sync"), names=NAMES, extra_config=CONFIG
    ).start()
    try:
        register(fleet, "Denver", "Berlin")
        register(fleet, "Denver", "Paris")  # before Paris was taken
        admin = {"X-Auth-Token": fleet.token("Berlin")}
        with fleet.client("Berlin", headers=admin) as berlin:
            ids = {}
            for name in ("ops", "secret"):
                r = berlin.post("/identity/v3/projects", json={"project": {"name": name}})
                assert r.status_code == 201, r.text
                ids[name] = r.json()["project"]["id"]
            r = berlin.post(
                "/edge/v1/sync/marks",
                json={"mark": {"kind": "project", "id": ids["ops"], "to": "Denver"}},
            )
            assert r.status_code == 201, r.text
            data = os.urandom(64 * 1024)
            r = berlin.post(
                "/image/v2/images",
                json={"name": "private", "disk_format": "raw", "container_format": "bare"},
            )
            r = berlin.put(
                f"/image/v2/images/{r.json()['id']}/file",
                content=data,
                headers={"Content-Type": "application/octet-stream"},
            )
            assert r.status_code == 204, r.text
        with fleet.client("Denver", headers={"X-Auth-Token": fleet.token("Denver")}) as denver:
            for name in ("denver-own", "admin-tools"):
                r = denver.post(
                    "/identity/v3/projects",
                    json={"project": {"name": name, "description": "Denver's own"}},
                )
                assert r.status_code == 201, r.text
            r = denver.post(
                "/identity/v3/users", json={"user": {"name": "dora", "password": PASSWORD}}
            )
            assert r.status_code == 201, r.text
        scene = Scene(
            fleet=fleet,
            paris=HostileSite.from_data_dir("Paris", fleet["Paris"].data_dir),
            ops=ids["ops"],
            secret=ids["secret"],
            private_sha=hashlib.sha256(data).hexdigest(),
        )
        until(lambda: scene.project_of("Denver", scene.ops) is not None, what="ops at Denver")
        yield scene
    finally:
        fleet.stop()


def project_row(name: str, *, pid: str | None = None, description: str = "") -> dict[str, Any]:
    return {"id": pid or predictable_id("project", name), "name": name, "domain_id": DEFAULT,
            "parent_id": DEFAULT, "description": description, "enabled": True, "tags": [],
            "extra": {}}  # fmt: skip


def upsert(kind: str, key: str, row: dict[str, Any]) -> dict[str, Any]:
    return {"kind": kind, "key": key, "version": next(VERSIONS), "op": "upsert", "row": row}


def image_row(image_id: str, sha: str, size: int) -> dict[str, Any]:
    return {
        "id": image_id, "name": "trojan", "status": "active", "size": size,
        "virtual_size": None, "disk_format": "raw", "container_format": "bare", "owner": None,
        "visibility": "public", "protected": False, "os_hidden": False, "min_disk": 0,
        "min_ram": 0, "checksum": None, "os_hash_algo": None, "os_hash_value": None,
        "blob_sha256": sha, "properties": {}, "tags": [], "created_at": NOW, "updated_at": NOW,
    }  # fmt: skip


def codes(r: httpx.Response) -> list[tuple[str, int]]:
    return [(x["status"], x.get("code", 200)) for x in r.json()["results"]]


# ---- the attacks --------------------------------------------------------------------------


def test_a_site_that_registers_itself_gets_nothing_unmarked(scene: Scene) -> None:
    r = scene.attack("Berlin", "POST", "/edge/v1/sync/receivers", {})
    assert r.status_code == 202, r.text  # recorded, not accepted
    assert r.json()["registration"]["state"] == "pending"
    for kind, key in (("project", scene.secret), ("project", scene.ops)):
        r = scene.attack("Berlin", "POST", "/edge/v1/sync/pull", {"kind": kind, "id": key})
        assert r.status_code == 403, r.text
    r = scene.attack("Berlin", "GET", f"/edge/v1/sync/blobs/{scene.private_sha}")
    assert r.status_code == 403, r.text
    r = scene.attack("Berlin", "GET", "/edge/v1/sync/progress/report")
    assert r.status_code == 403, r.text
    # Even once Berlin's operator accepts it, Paris gets only what is marked for Paris.
    with scene.admin("Berlin") as berlin:
        r = berlin.post("/edge/v1/sync/receivers/Paris/accept")
        assert r.status_code == 200 and r.json()["receiver"]["state"] == "accepted"
        try:
            for kind, key in (("project", scene.secret), ("project", scene.ops)):
                r = scene.attack("Berlin", "POST", "/edge/v1/sync/pull", {"kind": kind, "id": key})
                assert r.status_code == 404, r.text
            r = scene.attack("Berlin", "GET", f"/edge/v1/sync/blobs/{scene.private_sha}")
            assert r.status_code == 404, r.text
            r = berlin.get("/edge/v1/sync/progress", params={"kind": "project", "id": scene.secret})
            assert r.json()["progress"]["resources"] == []  # nothing was queued for anyone
        finally:
            assert berlin.delete("/edge/v1/sync/receivers/Paris").status_code == 204
    scene.fleet_serves()


def test_pushes_cannot_take_the_receivers_rows_nor_another_sources(scene: Scene) -> None:
    own = predictable_id("project", "denver-own")
    dora = predictable_id("user", "dora")
    r = scene.push(
        [
            upsert("project", own, project_row("denver-own", description="Paris was here")),
            upsert("project", scene.ops, project_row("ops", pid=scene.ops, description="mine")),
            upsert(
                "user",
                dora,
                {
                    "id": dora,
                    "name": "dora",
                    "domain_id": DEFAULT,
                    "enabled": False,
                    "password_hash": None,
                    "password_set_at": None,
                    "default_project_id": None,
                    "extra": {},
                },
            ),
            {"kind": "project", "key": own, "version": 2**40, "op": "delete"},
        ]  # fmt: skip
    )
    assert r.status_code == 409, r.text
    assert codes(r) == [("conflict", 409)] * 4
    assert scene.project_of("Denver", own)["description"] == "Denver's own"  # type: ignore[index]
    assert scene.project_of("Denver", scene.ops)["description"] == ""  # type: ignore[index]
    assert scene.fleet.token("Denver", user="dora", password=PASSWORD, project=None)

    # Paris's own user is Paris's business; Denver's admin project and system are not.
    mallory = predictable_id("user", "mallory")
    hashed = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1).hash(PASSWORD)
    admin_project = predictable_id("project", "admin")
    r = scene.push(
        [
            upsert(
                "user",
                mallory,
                {
                    "id": mallory,
                    "name": "mallory",
                    "domain_id": DEFAULT,
                    "enabled": True,
                    "password_hash": hashed,
                    "password_set_at": None,
                    "default_project_id": None,
                    "extra": {},
                },
            ),
            upsert(
                "role_assignment",
                f"user|{mallory}|project|{admin_project}|{ROLE_ADMIN}",
                {
                    "actor_type": "user",
                    "actor_id": mallory,
                    "target_type": "project",
                    "target_id": admin_project,
                    "role_id": ROLE_ADMIN,
                },
            ),
            upsert(
                "role_assignment",
                f"user|{mallory}|system|all|{ROLE_ADMIN}",
                {
                    "actor_type": "user",
                    "actor_id": mallory,
                    "target_type": "system",
                    "target_id": "all",
                    "role_id": ROLE_ADMIN,
                },
            ),
        ]  # fmt: skip
    )
    assert codes(r) == [("applied", 200), ("conflict", 409), ("rejected", 403)], r.text
    with pytest.raises(httpx.HTTPStatusError):
        scene.fleet.token("Denver", user="mallory", password=PASSWORD, project="admin")

    # Denver's operator sees each clash, and an alarm names the source.
    with scene.admin("Denver") as denver:
        found = denver.get("/edge/v1/sync/conflicts", params={"source": "Paris"}).json()
        held = {(c["kind"], c["id"]): c["held"]["origin"] for c in found["conflicts"]}
        assert held[("project", own)] is None and held[("project", scene.ops)] == "Berlin"

        def alarmed() -> bool:
            alarms = denver.get("/edge/v1/alarms", params={"type": "sync_conflict"}).json()
            return any(a["entity"] == "site=Paris" for a in alarms["alarms"])

        until(alarmed, what="a sync_conflict alarm at Denver")
    scene.fleet_serves()


def test_a_blob_name_cannot_name_a_file_of_the_data_directory(scene: Scene) -> None:
    key_file = scene.fleet["Denver"].data_dir / "keys" / "signing.pem"
    images = {
        "10000000-0000-0000-0000-000000000001": "../keys/signing.pem",
        "10000000-0000-0000-0000-000000000002": "../../denver/keys/signing.pem",
        "10000000-0000-0000-0000-000000000003": "/" + str(key_file).lstrip("/"),
        "10000000-0000-0000-0000-000000000004": "A" * 64,
    }
    r = scene.push(
        [
            upsert("image", i, image_row(i, sha, key_file.stat().st_size))
            for i, sha in images.items()
        ]
    )
    assert r.status_code == 400, r.text
    assert codes(r) == [("rejected", 400)] * 4
    with scene.admin("Denver") as denver:
        for image_id in images:
            assert denver.get(f"/image/v2/images/{image_id}").status_code == 404
            got = denver.get(f"/image/v2/images/{image_id}/file")
            assert got.status_code == 404 and b"PRIVATE KEY" not in got.content
        r = denver.get("/edge/v1/sync/progress", params={"depth": "0"})
        assert r.json()["progress"]["images"] == []  # no fetch was recorded
    # Nor as a blob path: Paris is no receiver of Denver, and the name is checked first.
    for name in ("..%2Fkeys%2Fsigning.pem", "....%2F%2Fkeys", "a" * 63 + "G"):
        r = scene.attack("Denver", "GET", f"/edge/v1/sync/blobs/{name}")
        assert r.status_code in (400, 403, 404) and b"PRIVATE KEY" not in r.content
    scene.fleet_serves()


def test_malformed_items_are_a_4xx_each_and_leave_no_trace(scene: Scene) -> None:
    good = project_row("well-formed")
    pid = good["id"]
    bad = [
        {**upsert("project", pid, good), "version": 2**64 - 1},
        {**upsert("project", pid, good), "version": "7"},
        upsert("project", pid, {**good, "name": {"$gt": ""}}),
        upsert("project", pid, {**good, "name": "nul\u0000"}),
        upsert("project", pid, {**good, "enabled": "yes"}),
        upsert("project", pid, {**good, "id": "x" * 70}),
        upsert(
            "flavor",
            "f1",
            {"id": "f1", "name": "f", "vcpus": 2**40, "ram": 1, "disk": 1, "created_at": NOW},
        ),  # fmt: skip
        {"kind": "quota", "key": "project|a", "version": 1, "op": "upsert", "row": {}},
        {"kind": "??", "key": "k", "version": 1, "op": "upsert", "row": {}},
        {**upsert("project", pid, good), "targets": "@@(("},
    ]
    r = scene.push(bad)
    assert r.status_code == 400, r.text
    assert codes(r) == [("rejected", 400)] * len(bad)
    for body in (b"not json", b'{"items": 7}', b'{"items": [1, 2]}', b"[]"):
        r = scene.paris.call(
            scene.fleet["Denver"].url, target="Denver", method="POST", path=PUSH, body=body
        )
        assert r.status_code == 400, r.text
    assert scene.project_of("Denver", pid) is None
    with scene.admin("Denver") as denver:
        assert denver.get("/compute/v2.1/flavors/f1").status_code == 404
    scene.fleet_serves()


class EndlessBlobs(http.server.ThreadingHTTPServer):
    """What a compromised source serves for any blob: bytes without end, counted."""

    daemon_threads = True
    allow_reuse_address = True
    largest = 0  # the most bytes one response got out before the reader hung up


class _EndlessHandler(http.server.BaseHTTPRequestHandler):
    server: EndlessBlobs

    def do_GET(self) -> None:  # noqa: N802 - the standard library's name
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        chunk = b"\0" * (256 * 1024)
        sent = 0
        try:
            for _ in range(4096):  # up to 1 GiB, until the reader hangs up
                self.wfile.write(chunk)
                sent += len(chunk)
                self.server.largest = max(self.server.largest, sent)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args: Any) -> None:
        pass


def test_an_oversized_blob_is_refused_and_a_longer_one_cut_off(scene: Scene) -> None:
    image_id = "20000000-0000-0000-0000-000000000001"
    r = scene.push([upsert("image", image_id, image_row(image_id, "b" * 64, MAX_IMAGE_BYTES + 1))])
    assert codes(r) == [("rejected", 413)], r.text

    # Paris's box now serves its own program: a blob that never ends.
    paris = scene.fleet["Paris"]
    paris.stop()
    server = EndlessBlobs(("127.0.0.1", paris.port), _EndlessHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        image_id = "20000000-0000-0000-0000-000000000002"
        r = scene.push([upsert("image", image_id, image_row(image_id, "c" * 64, 1024))])
        assert codes(r) == [("applied", 200)], r.text

        def cut_off() -> bool:
            with scene.admin("Denver") as denver:
                report = denver.get("/edge/v1/sync/progress", params={"depth": "0"}).json()
            pulls = [i for i in report["progress"]["images"] if i["image_id"] == image_id]
            return bool(pulls) and "more than the 1024 bytes" in str(pulls[0]["last_error"])

        until(cut_off, what="Denver cutting the blob off at its size")
        # What one response got out: socket and link buffers, not the gigabyte offered.
        assert server.largest < 32 * 1024 * 1024, f"{server.largest} bytes in one response"
        partial = scene.fleet["Denver"].data_dir / "images" / ".sync" / f"{'c' * 64}.part"
        assert not partial.exists()
        with scene.admin("Denver") as denver:
            assert denver.get(f"/image/v2/images/{image_id}").json()["status"] == "queued"
    finally:
        server.shutdown()
        server.server_close()
        paris.start()
    scene.fleet_serves()
