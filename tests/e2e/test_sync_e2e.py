"""Sync over real site processes behind the WAN emulator: cut/heal, CLI, kill -9."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgefed.testkit.fleet_process import ProcessFleet, password_token
from edgefed.testkit.postgres import PostgresServer
from edgefed.testkit.wait import until

pytestmark = pytest.mark.e2e

PASSWORD = "e2e-Passw0rd!"
FAST_RETRIES = (
    "sync_backoff_seconds = [0.2, 0.5, 1.0]\n"
    "sync_breaker_threshold = 2\n"
    "sync_breaker_cooldown_seconds = 1.0\n"
)


def api(fleet: ProcessFleet, site: str) -> httpx.Client:
    proc = fleet[site]
    token = password_token(proc.url, proc.password)
    return httpx.Client(base_url=proc.url, headers={"X-Auth-Token": token}, timeout=30)


def cli(fleet: ProcessFleet, site: str, *argv: str) -> str:
    proc = fleet[site]
    env = dict(os.environ, EDGEFED_SITE_URL=proc.url, OS_PASSWORD=proc.password)
    done = subprocess.run(
        [sys.executable, "-m", "edgefed.cli.main", "sync", *argv],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def can_login(fleet: ProcessFleet, site: str, user: str, project: str) -> bool:
    try:
        password_token(fleet[site].url, PASSWORD, user=user, project=project)
        return True
    except httpx.HTTPError:
        return False


def databases(server: PostgresServer | None, names: list[str]) -> dict[str, str | None]:
    """A fresh PostgreSQL database per site on ``--database=postgres`` runs, else SQLite."""
    if server is None:
        return {}
    return {n: server.create_database(f"e_{n.lower()}_{uuid.uuid4().hex[:8]}") for n in names}


@pytest.fixture
def three_sites(tmp_path: Path, postgres_server: PostgresServer | None) -> Iterator[ProcessFleet]:
    names = ["Berlin", "Denver", "Paris"]
    fleet = ProcessFleet(
        root=tmp_path,
        names=names,
        rtt_ms=20,
        extra_config=FAST_RETRIES,
        database_urls=databases(postgres_server, names),
    ).start()
    try:
        yield fleet
    finally:
        fleet.stop()


def test_identity_flavor_quota_reach_every_receiver_including_one_cut_off(
    three_sites: ProcessFleet,
) -> None:
    fleet = three_sites
    for receiver in ("Denver", "Paris"):
        asked = cli(fleet, receiver, "register", "--source", "Berlin")
        assert f"edgefed sync accept {receiver}" in asked  # Berlin's operator decides
    assert "pending" in cli(fleet, "Berlin", "receivers")
    for receiver in ("Denver", "Paris"):
        assert f"accepted {receiver}" in cli(fleet, "Berlin", "accept", receiver)
    fleet.wan.cut_site("Paris")
    with api(fleet, "Berlin") as berlin:
        pid = berlin.post("/identity/v3/projects", json={"project": {"name": "ops"}}).json()[
            "project"
        ]["id"]
        uid = berlin.post(
            "/identity/v3/users", json={"user": {"name": "carol", "password": PASSWORD}}
        ).json()["user"]["id"]
        role = berlin.get("/identity/v3/roles?name=member").json()["roles"][0]["id"]
        assert (
            berlin.put(f"/identity/v3/projects/{pid}/users/{uid}/roles/{role}").status_code == 204
        )
        flavor = berlin.post(
            "/compute/v2.1/flavors",
            json={"flavor": {"name": "e2e.small", "ram": 256, "vcpus": 1, "disk": 1}},
        ).json()["flavor"]
        r = berlin.put(f"/compute/v2.1/os-quota-sets/{pid}", json={"quota_set": {"instances": 7}})
        assert r.status_code == 200, r.text
    for kind, key in (("project", pid), ("user", uid), ("flavor", flavor["id"])):
        cli(fleet, "Berlin", "mark", kind, key, "--to", "*")

    until(lambda: can_login(fleet, "Denver", "carol", "ops"), what="login at Denver")
    # Paris is cut off: it keeps serving locally, and Berlin shows it failing.
    with api(fleet, "Paris") as paris:
        assert (
            paris.post(
                "/identity/v3/projects", json={"project": {"name": "paris-only"}}
            ).status_code
            == 201
        )
    assert not can_login(fleet, "Paris", "carol", "ops")
    status = cli(fleet, "Berlin", "status")
    assert "-> Denver" in status and "-> Paris" in status
    fleet.wan.heal_site("Paris")
    until(lambda: can_login(fleet, "Paris", "carol", "ops"), what="login at Paris after healing")
    for site in ("Denver", "Paris"):
        with api(fleet, site) as c:
            assert c.get(f"/compute/v2.1/flavors/{flavor['id']}").status_code == 200
            quota = c.get(f"/compute/v2.1/os-quota-sets/{pid}").json()["quota_set"]
            assert quota["instances"] == 7
            r = c.delete(f"/compute/v2.1/flavors/{flavor['id']}")
            assert r.status_code == 409 and "Berlin" in r.text

    # Denver's own "shared" has the ID of Berlin's "shared": a clash, shown, then adopted.
    body = {"project": {"name": "shared", "description": "Denver's"}}
    with api(fleet, "Denver") as denver:
        shared = denver.post("/identity/v3/projects", json=body).json()["project"]["id"]
    with api(fleet, "Berlin") as berlin:
        body["project"]["description"] = "Berlin's"
        assert berlin.post("/identity/v3/projects", json=body).json()["project"]["id"] == shared
    cli(fleet, "Berlin", "mark", "project", shared, "--to", "Denver")
    until(lambda: shared in cli(fleet, "Denver", "conflicts"), what="the clash listed at Denver")
    assert "own" in cli(fleet, "Denver", "conflicts", "--source", "Berlin")
    adopted = cli(fleet, "Denver", "conflicts", "resolve", "project", shared, "--source", "Berlin",
                  "--adopt")  # fmt: skip
    assert "adopted Berlin's version" in adopted

    def berlins() -> bool:
        with api(fleet, "Denver") as denver:
            project = denver.get(f"/identity/v3/projects/{shared}").json()["project"]
        return bool(project["description"] == "Berlin's")

    until(berlins, what="Berlin's version of the shared project at Denver")
    assert "no sync conflicts" in cli(fleet, "Denver", "conflicts")


def listing(fleet: ProcessFleet, site: str) -> list[tuple[Any, ...]]:
    with api(fleet, site) as c:
        projects = c.get("/identity/v3/projects").json()["projects"]
    return sorted(
        (p["id"], p["name"], p["description"]) for p in projects if p["name"].startswith("bulk-")
    )


def test_kill_9_of_the_source_mid_sync_loses_nothing(
    tmp_path: Path, postgres_server: PostgresServer | None
) -> None:
    names = ["Berlin", "Denver", "Paris", "Tokyo"]
    fleet = ProcessFleet(
        root=tmp_path,
        names=names,
        rtt_ms=10,
        # Berlin's operator accepts these receivers ahead, in its site.toml.
        extra_config=FAST_RETRIES + 'sync_accept = ["Denver", "Paris", "@tier=edge"]\n',
        labels={"Tokyo": {"tier": "edge"}},
        database_urls=databases(postgres_server, names),
    ).start()
    try:
        for receiver in names[1:]:
            assert "first full sync started" in cli(
                fleet, receiver, "register", "--source", "Berlin"
            )
        with api(fleet, "Berlin") as berlin:
            for n in range(301):
                r = berlin.post(
                    "/identity/v3/projects", json={"project": {"name": f"bulk-{n:04d}"}}
                )
                assert r.status_code == 201
        # Marking queues 903 deliveries at once; kill -9 right after the answer.
        cli(fleet, "Berlin", "mark", "project", "*", "--to", "*")
        # Kill while deliveries are under way, then add and change more after restart.
        fleet["Berlin"].kill()
        fleet["Berlin"].restart()
        with api(fleet, "Berlin") as berlin:
            for n in range(301, 400):
                assert (
                    berlin.post(
                        "/identity/v3/projects", json={"project": {"name": f"bulk-{n:04d}"}}
                    ).status_code
                    == 201
                )
            first = next(
                p
                for p in berlin.get("/identity/v3/projects").json()["projects"]
                if p["name"] == "bulk-0000"
            )
            berlin.patch(
                f"/identity/v3/projects/{first['id']}", json={"project": {"description": "v2"}}
            )
        want = listing(fleet, "Berlin")
        assert len(want) == 400
        for receiver in names[1:]:
            until(
                lambda r=receiver: listing(fleet, r) == want,
                within=90,
                what=f"{receiver} converges",
            )
    finally:
        fleet.stop()
