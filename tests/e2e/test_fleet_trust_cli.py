"""Fleet membership and trust through the `edgefed` CLI, on real site processes: who is
an authority, mapping another site's user to a role here, enrolling and revoking."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from edgefed.testkit.fleet_process import ProcessFleet, password_token

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessFleet]:
    f = ProcessFleet(
        root=tmp_path_factory.mktemp("trust-cli"), names=["Berlin", "Denver"], trust_admins=False
    ).start()
    try:
        yield f
    finally:
        f.stop()


def edgefed(fleet: ProcessFleet, site: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI against ``site``, as its admin (connection options after the command)."""
    url = fleet[site].url
    token = password_token(url, fleet[site].password)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    argv = [*args[:2], "--site-url", url, "--os-token", token, *args[2:]]
    return subprocess.run(
        [sys.executable, "-m", "edgefed.cli.main", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def admin_post(fleet: ProcessFleet, site: str, path: str, body: dict[str, object]) -> None:
    url = fleet[site].url
    r = httpx.post(url + path, json=body, headers={"X-Auth-Token": password_token(url)}, timeout=30)
    assert r.status_code == 201, r.text


def test_operators_map_enroll_and_revoke_with_the_cli(fleet: ProcessFleet) -> None:
    r = edgefed(fleet, "Berlin", "fleet", "sites")
    assert r.returncode == 0, r.stderr
    berlin_row = next(line for line in r.stdout.splitlines() if line.startswith("| Berlin "))
    assert "yes" in berlin_row  # the founder is the fleet's authority

    # alice, a Berlin user; research exists at both sites.
    for site in ("Berlin", "Denver"):
        admin_post(fleet, site, "/identity/v3/projects", {"project": {"name": "research"}})
    admin_post(fleet, "Berlin", "/identity/v3/users",
               {"user": {"name": "alice", "password": "alice-pw-1"}})  # fmt: skip
    berlin = fleet["Berlin"].url
    headers = {"X-Auth-Token": password_token(berlin)}
    users = httpx.get(f"{berlin}/identity/v3/users?name=alice", headers=headers).json()
    projects = httpx.get(f"{berlin}/identity/v3/projects?name=research", headers=headers).json()
    roles = httpx.get(f"{berlin}/identity/v3/roles?name=member", headers=headers).json()
    r = httpx.put(
        f"{berlin}/identity/v3/projects/{projects['projects'][0]['id']}/users/"
        f"{users['users'][0]['id']}/roles/{roles['roles'][0]['id']}",
        headers=headers,
    )
    assert r.status_code == 204, r.text
    alice = {"X-Auth-Token": password_token(berlin, "alice-pw-1", user="alice", project="research")}
    denver = fleet["Denver"].url
    assert httpx.get(f"{denver}/compute/v2.1/servers", headers=alice).status_code == 403

    r = edgefed(fleet, "Denver", "fleet", "map", "--site", "Berlin", "--user", "alice",
                "--role", "member", "--project", "research")  # fmt: skip
    assert r.returncode == 0, r.stderr
    rule_id = r.stdout.strip()
    assert httpx.get(f"{denver}/compute/v2.1/servers", headers=alice).status_code == 200
    r = edgefed(fleet, "Denver", "fleet", "mappings")
    assert rule_id in r.stdout and "alice@Default" in r.stdout and "member" in r.stdout
    r = edgefed(fleet, "Denver", "fleet", "unmap", rule_id)
    assert r.returncode == 0, r.stderr
    assert httpx.get(f"{denver}/compute/v2.1/servers", headers=alice).status_code == 403

    # Enrolling is an authority's: Denver says who may.
    r = edgefed(fleet, "Denver", "fleet", "enroll", "Lyon")
    assert r.returncode != 0 and "not a fleet authority" in (r.stdout + r.stderr)
    r = edgefed(fleet, "Berlin", "fleet", "enroll", "Lyon")
    assert r.returncode == 0 and r.stdout.startswith("EF1."), r.stderr

    # Revoking too; a revoked site's tokens are refused.
    denver_admin = {"X-Auth-Token": password_token(denver)}
    r = edgefed(fleet, "Berlin", "fleet", "revoke", "Denver")
    assert r.returncode == 0, r.stderr
    r = httpx.get(f"{berlin}/edge/v1/fleet/sites", headers=denver_admin)
    assert r.status_code == 401
