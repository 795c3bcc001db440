"""The OpenStackoïd matrix (seed 002), with the real ``openstack`` CLI over real processes.

Boot a VM 1-DC, x-DC (the image from another site) and *-DC (``&``), each under global
connectivity and under partial connectivity (every site outside the scope cut off by
the WAN emulator): all six must pass. Plus: ``Denver|Paris`` falls back when Denver is
cut; ``server list --os-scope '{compute: *}'`` lists every site's servers tagged by site;
an isolated site keeps serving its own users; both sides of a partition stay operable.
And what a user reads when a scope is wrong: an unknown site, not a failed version
discovery; a network entry a boot cannot honour, refused in words that name it.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openstack
import pytest

from edgefed.testkit.fleet_process import ProcessFleet, password_token
from edgefed.testkit.osc import OpenStackCLI

pytestmark = pytest.mark.e2e

SITES = ["Berlin", "Denver", "Paris"]
FAST_HEALTH = (
    "peer_timeout_seconds = 2.0\nhealth_interval_seconds = 0.5\nscope_call_timeout_seconds = 8.0\n"
)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessFleet]:
    f = ProcessFleet(
        root=tmp_path_factory.mktemp("matrix"),
        names=SITES,
        rtt_ms=5.0,  # the matrix is about connectivity; latency has its own benchmark
        extra_config=FAST_HEALTH,
    ).start()
    try:
        yield f
    finally:
        f.stop()


def cli(fleet: ProcessFleet, site: str, *, interface: str = "public") -> OpenStackCLI:
    """The CLI of an operator at ``site``; ``internal``: next to it, not across the WAN."""
    s = fleet[site]
    return OpenStackCLI(auth_url=s.auth_url, password=s.password, region=site, interface=interface)


def disk(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.img"
    path.write_bytes(os.urandom(256 * 1024))
    return path


def upload(fleet: ProcessFleet, site: str, name: str, tmp_path: Path) -> str:
    image = cli(fleet, site).json(
        "image",
        "create",
        "--file",
        str(disk(tmp_path, name)),
        "--disk-format",
        "raw",
        "--container-format",
        "bare",
        "--public",
        name,
    )
    return str(image["id"])


def servers_at(fleet: ProcessFleet, site: str) -> dict[str, dict[str, Any]]:
    s = fleet[site]
    token = password_token(s.url, s.password)
    r = httpx.get(
        f"{s.url}/compute/v2.1/servers/detail", headers={"X-Auth-Token": token}, timeout=30
    )
    r.raise_for_status()
    return {v["name"]: v for v in r.json()["servers"]}


def wait_down(fleet: ProcessFleet, origin: str, cut: list[str]) -> None:
    """Until the origin's health monitor sees the cut sites as offline (bounded)."""
    s = fleet[origin]
    end = time.monotonic() + 20
    token = password_token(s.url, s.password)
    while time.monotonic() < end:
        r = httpx.get(f"{s.url}/edge/v1/fleet/alarms", headers={"X-Auth-Token": token}, timeout=30)
        statuses = {x["name"]: x["status"] for x in r.json()["sites"]}
        if all(statuses.get(c) == "offline" for c in cut):
            return
        time.sleep(0.2)
    raise AssertionError(f"{origin} never saw {cut} offline")


CASES = [
    ("1dc", "{compute: Berlin, image: Berlin}", "Berlin", ["Berlin"]),
    ("xdc", "{compute: Berlin, image: Denver}", "Denver", ["Berlin"]),
    ("stardc", "{compute: Berlin&Denver, image: Denver}", "Denver", ["Berlin", "Denver"]),
]


@pytest.mark.parametrize("connectivity", ["global", "partial"])
@pytest.mark.parametrize(("case", "scope", "image_site", "compute_sites"), CASES)
def test_boot_matrix(
    fleet: ProcessFleet,
    tmp_path: Path,
    case: str,
    scope: str,
    image_site: str,
    compute_sites: list[str],
    connectivity: str,
) -> None:
    name = f"vm-{case}-{connectivity}"
    image = f"img-{case}-{connectivity}"
    upload(fleet, image_site, image, tmp_path)
    in_scope = set(compute_sites) | {image_site}
    cut = [s for s in SITES if s not in in_scope] if connectivity == "partial" else []
    for site in cut:
        fleet.wan.cut_site(site)
    try:
        server = cli(fleet, "Berlin").json(
            "--os-scope",
            scope,
            "server",
            "create",
            "--image",
            image,
            "--flavor",
            "m1.tiny",
            "--wait",
            name,
        )
        assert server["status"] == "ACTIVE", server
        for site in compute_sites:
            here = servers_at(fleet, site)
            assert name in here, f"{name} missing at {site}"
            assert here[name]["status"] == "ACTIVE"
        for site in set(SITES) - set(compute_sites) - set(cut):
            assert name not in servers_at(fleet, site)
    finally:
        for site in cut:
            fleet.wan.heal_site(site)


def test_server_list_over_every_site_is_tagged(fleet: ProcessFleet, tmp_path: Path) -> None:
    for site in SITES:
        upload(fleet, site, f"local-{site}", tmp_path)
        cli(fleet, site).run(
            "server",
            "create",
            "--image",
            f"local-{site}",
            "--flavor",
            "m1.tiny",
            "--wait",
            f"home-{site}",
        )
    listed = cli(fleet, "Paris").json("--os-scope", "{compute: *}", "server", "list")
    names = {s["Name"] for s in listed}
    assert {f"home-{s}" for s in SITES} <= names
    # The same through the environment (OS_SCOPE), as the plugin documents.
    paris = cli(fleet, "Paris")
    paris.extra_env = {"OS_SCOPE": "{compute: Berlin|Denver}"}
    listed = paris.json("server", "list")
    assert "home-Berlin" in {s["Name"] for s in listed}
    assert "home-Paris" not in {s["Name"] for s in listed}
    # openstacksdk, with the documented one-liner: every item carries its site.
    s = fleet["Paris"]
    conn = openstack.connect(
        auth_url=s.auth_url,
        username="admin",
        password=s.password,
        project_name="admin",
        user_domain_name="Default",
        project_domain_name="Default",
        region_name="Paris",
    )
    conn.session.additional_headers["X-Scope"] = "{compute: *}"
    body = conn.compute.get("/servers/detail").json()
    tags = {v["name"]: v["os-scope:site"] for v in body["servers"]}
    assert all(tags[f"home-{site}"] == site for site in SITES)


def test_fallback_when_denver_is_cut(fleet: ProcessFleet, tmp_path: Path) -> None:
    upload(fleet, "Denver", "shared-img", tmp_path)
    upload(fleet, "Paris", "shared-img", tmp_path)
    fleet.wan.cut_site("Denver")
    try:
        wait_down(fleet, "Berlin", ["Denver"])
        started = time.monotonic()
        server = cli(fleet, "Berlin").json(
            "--os-scope",
            "{compute: Berlin, image: Denver|Paris}",
            "server",
            "create",
            "--image",
            "shared-img",
            "--flavor",
            "m1.tiny",
            "--wait",
            "vm-fallback",
        )
        assert server["status"] == "ACTIVE"
        assert time.monotonic() - started < 60
        images = {i["Name"]: i for i in cli(fleet, "Berlin").json("image", "list")}
        assert "shared-img" in images  # cached from Paris
    finally:
        fleet.wan.heal_site("Denver")


def test_both_sides_of_a_partition_stay_operable(fleet: ProcessFleet, tmp_path: Path) -> None:
    fleet.wan.cut_site("Denver")
    try:
        # The isolated site serves its own users for every local operation.
        denver = cli(fleet, "Denver", interface="internal")
        denver.run("token", "issue")
        denver.run("project", "create", "isolated-project")
        denver.run(
            "user", "create", "--password", "pw-1234", "--project", "isolated-project", "ida"
        )
        denver.run("role", "add", "--user", "ida", "--project", "isolated-project", "member")
        ida = denver.as_user("ida", "pw-1234", "isolated-project")
        ida.run("token", "issue")
        denver.run(
            "image",
            "create",
            "--file",
            str(disk(tmp_path, "island")),
            "--disk-format",
            "raw",
            "--container-format",
            "bare",
            "island-img",
        )
        denver.run("flavor", "create", "--vcpus", "1", "--ram", "128", "--disk", "1", "island")
        denver.run(
            "server", "create", "--image", "island-img", "--flavor", "island", "--wait", "island-vm"
        )
        assert "island-vm" in {s["Name"] for s in denver.json("server", "list")}
        # The other side collaborates as usual.
        upload(fleet, "Paris", "mainland-img", tmp_path)
        server = cli(fleet, "Berlin").json(
            "--os-scope",
            "{compute: Berlin, image: Paris}",
            "server",
            "create",
            "--image",
            "mainland-img",
            "--flavor",
            "m1.tiny",
            "--wait",
            "mainland-vm",
        )
        assert server["status"] == "ACTIVE"
    finally:
        fleet.wan.heal_site("Denver")


def refusal(result: subprocess.CompletedProcess[str], path: str) -> str:
    """What the CLI printed for a refused call to ``path``, after its URL; and it failed."""
    assert result.returncode == 1, result.stdout + result.stderr
    head, _, message = result.stderr.partition(", ")
    assert head.startswith("BadRequestException: 400: Client Error for url: http"), result.stderr
    assert head.endswith(path), result.stderr
    return message.rstrip("\n")


def test_a_bad_scope_reaches_the_user_past_version_discovery(fleet: ProcessFleet) -> None:
    """Version discovery is answered by the site itself: the user reads the scope's
    error, not "The image service ... does not have any supported versions"."""
    r = cli(fleet, "Berlin").run(
        "--os-scope", "{image: Nowhere|Denver}", "image", "list", check=False
    )
    assert refusal(r, "/image/v2/images") == (
        "Invalid X-Scope header: unknown site 'Nowhere' (the fleet has Berlin, Denver, Paris)"
    )


def test_a_boot_refuses_a_network_entry_it_cannot_honour(
    fleet: ProcessFleet, tmp_path: Path
) -> None:
    upload(fleet, "Berlin", "img-netscope", tmp_path)
    boot = ("server", "create", "--image", "img-netscope", "--flavor", "m1.tiny")
    berlin = cli(fleet, "Berlin")
    r = berlin.run("--os-scope", "{compute: Berlin, network: Denver}", *boot, "vm-net", check=False)
    assert refusal(r, "/compute/v2.1/servers") == (
        "Scope entry 'network: Denver' cannot be honoured: the networks of a server booted "
        "at Berlin use Berlin's own network service only. Name Berlin for network in the "
        "scope, or leave the entry out."
    )
    assert "vm-net" not in servers_at(fleet, "Berlin")
    # Berlin first, as the entry asks, is what Berlin does: honoured.
    berlin.run("--os-scope", "{compute: Berlin, network: Berlin|Denver}", *boot, "vm-net")
    assert "vm-net" in servers_at(fleet, "Berlin")
