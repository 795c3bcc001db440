"""What a real guest shows through the ``openstack`` CLI: its console (cut as Nova and
Tempest count), its diagnostics from QEMU's counters, the hypervisor with its CPU model
and accelerator and the guest's use, its series in ``/metrics``, and a snapshot that
boots again as a copy of its disk. An all-in-one site with the qemu driver (its own
host agent), QEMU under TCG, the tiny guest image registered as ``edgefed up`` does.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from qemu_site import IMAGE_DIR, built_guest_image, host_ready, qemu_site

from edgefed.cli.up_seed import IMAGE_NAME, register, tiny_guest
from edgefed.testkit.agents import host_json
from edgefed.testkit.fleet_process import password_token
from edgefed.testkit.osc import OpenStackCLI
from edgefed.testkit.process import SiteProcess
from edgefed.testkit.wait import until

TAG = f"gv{os.getpid()}"
SITE = f"V{TAG}"
BOOT = 180.0  # seconds a TCG guest may take to boot on a loaded 2-core machine


pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not host_ready(), reason="needs root, QEMU, ip, nft, dnsmasq, tun"),
]


@pytest.fixture(scope="module")
def guest_image() -> Path:
    built_guest_image()
    return IMAGE_DIR


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SiteProcess]:
    with qemu_site(SITE, TAG, tmp_path_factory.mktemp("guest-views")) as proc:
        yield proc


async def _register(url: str, token: str, directory: Path) -> str:
    image = tiny_guest(directory)
    assert image is not None
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        return await register(http, {"X-Auth-Token": token}, image)


def test_a_real_guest_seen_through_the_compute_api(site, guest_image, tmp_path):
    osc = OpenStackCLI(auth_url=site.auth_url, password=site.password, timeout=180)
    token = password_token(site.url, site.password)
    image = asyncio.run(_register(site.url, token, guest_image))
    host = f"{SITE.lower()}-local"
    until(lambda: host_json(site, host)["availability"] == "available", within=60,
          what="the local agent enrolled")  # fmt: skip

    def booted(server: str) -> str:
        """The console once the guest's userspace said it is ready (bounded)."""
        seen: list[str] = []

        def ready() -> bool:
            shown = osc.json("server", "show", server)
            assert shown["status"] != "ERROR", shown.get("fault")
            seen[:] = [osc.run("console", "log", "show", server).stdout]
            return f"EDGEFED-GUEST ready host={server}" in seen[0]

        until(ready, within=BOOT, every=2, what=f"{server} booted")
        return seen[0]

    server = osc.json("server", "create", "--image", IMAGE_NAME, "--flavor", "m1.tiny", "web1")
    log = booted("web1")
    assert "Run /init as init process" in log and "\r" not in log
    assert osc.json("image", "show", IMAGE_NAME)["id"] == image

    # The tail as Nova cuts it: 3 pieces split at newlines (Tempest's count).
    tail = osc.run("console", "log", "show", "--lines", "3", "web1").stdout
    # (the CLI ends what it prints with a newline; a log that ends with one has 2 lines)
    assert 2 <= len(tail.rstrip("\n").split("\n")) <= 3

    diagnostics = osc.json("server", "show", "--diagnostics", "web1")
    assert (diagnostics["state"], diagnostics["driver"]) == ("running", "qemu")
    assert diagnostics["hypervisor"] == "qemu" and diagnostics["has_config_drive"] is True
    assert diagnostics["num_cpus"] == 1 and diagnostics["cpu_details"][0]["time"] > 0
    assert diagnostics["memory_details"]["maximum"] == 512
    assert diagnostics["num_disks"] >= 1 and diagnostics["disk_details"][0]["read_bytes"] > 0
    (port,) = osc.json("port", "list", "--server", "web1")
    assert diagnostics["nic_details"][0]["mac_address"] == port["MAC Address"]
    assert diagnostics["uptime"] >= 0

    hypervisor = osc.json("--os-compute-api-version", "2.87", "hypervisor", "show", host)
    assert hypervisor["hypervisor_type"] == "QEMU" and hypervisor["hypervisor_version"] > 0
    assert hypervisor["cpu_info"]["accel"] == "tcg" and hypervisor["cpu_info"]["model"]
    assert hypervisor["vcpus"] >= 1 and hypervisor["vcpus_used"] == 1
    assert hypervisor["memory_mb_used"] == 512 and hypervisor["running_vms"] == 1

    text = httpx.get(f"{site.url}/metrics", timeout=30).text
    families = {f.name: f for f in text_string_to_metric_families(text)}

    def guest(family: str) -> float:
        (sample,) = [s for s in families[family].samples if s.labels["server"] == server["id"]]
        return float(sample.value)

    assert guest("edgefed_guest_power_state") == 1 and guest("edgefed_guest_vcpus") == 1
    assert guest("edgefed_guest_cpu_seconds") > 0
    assert guest("edgefed_guest_disk_read_bytes") > 0
    used = {s.labels["host"]: s.value for s in families["edgefed_used_vcpus"].samples}
    assert used == {host: 1.0}

    # A snapshot is a copy of the disk: booted again, the guest counts its second boot.
    snap = osc.json("server", "image", "create", "--wait", "--name", "web1-snap", "web1")
    assert osc.json("image", "show", snap["id"])["status"] == "active"
    osc.json("server", "create", "--image", snap["id"], "--flavor", "m1.tiny", "web2")
    assert re.search(r"boot-disk dev=\S+ boot-count=2", booted("web2"))
    osc.run("server", "delete", "--wait", "web1", "web2")
