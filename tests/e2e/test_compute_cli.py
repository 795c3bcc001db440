"""Compute and network through the real ``openstack`` CLI and openstacksdk."""

from __future__ import annotations

import time
from pathlib import Path

import openstack
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

pytestmark = pytest.mark.e2e


def wait_status(osc, name: str, status: str, timeout: float = 60) -> None:
    """Poll ``server show`` until the status is reached (bounded)."""
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = osc.json("server", "show", name)["status"]
        if seen == status:
            return
    raise AssertionError(f"{name} stayed {seen}, expected {status}")


@pytest.fixture(scope="module")
def image(osc, tmp_path_factory) -> str:
    disk = Path(tmp_path_factory.mktemp("img")) / "cirros.img"
    disk.write_bytes(b"fake cirros disk" * 1024)
    out = osc.json(
        "image",
        "create",
        "--file",
        str(disk),
        "--disk-format",
        "qcow2",
        "--container-format",
        "bare",
        "--public",
        "cirros",
    )
    return out["id"]


def test_flavors_and_keypairs(osc, tmp_path):
    names = {f["Name"] for f in osc.json("flavor", "list")}
    assert {"m1.tiny", "m1.small"} <= names
    created = osc.json(
        "flavor", "create", "--vcpus", "2", "--ram", "256", "--disk", "1", "e2e.small"
    )
    assert created["vcpus"] == 2
    assert "e2e.small" in {f["Name"] for f in osc.json("flavor", "list")}
    private = ed25519.Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    (tmp_path / "key.pub").write_bytes(public + b" e2e@test")
    key = osc.json("keypair", "create", "--public-key", str(tmp_path / "key.pub"), "e2e-key")
    assert key["name"] == "e2e-key"
    assert any(k["Name"] == "e2e-key" for k in osc.json("keypair", "list"))
    dup = osc.run(
        "keypair", "create", "--public-key", str(tmp_path / "key.pub"), "e2e-key", check=False
    )
    assert dup.returncode != 0 and "already exists" in dup.stderr


def test_server_lifecycle(osc, image):
    server = osc.json(
        "server",
        "create",
        "--image",
        image,
        "--flavor",
        "m1.tiny",
        "--key-name",
        "e2e-key",
        "--wait",
        "vm1",
    )
    assert server["status"] == "ACTIVE"
    shown = osc.json("server", "show", "vm1")
    assert "10.0.0." in str(shown["addresses"])
    assert any(s["Name"] == "vm1" for s in osc.json("server", "list"))
    osc.run("server", "stop", "vm1")
    wait_status(osc, "vm1", "SHUTOFF")
    osc.run("server", "start", "vm1")
    wait_status(osc, "vm1", "ACTIVE")
    assert any(n["Name"] == "default" for n in osc.json("network", "list"))
    assert any(s["Subnet"] == "10.0.0.0/24" for s in osc.json("subnet", "list"))
    assert len(osc.json("port", "list")) >= 1
    assert osc.json("hypervisor", "list")
    osc.run("server", "delete", "--wait", "vm1")
    assert not any(s["Name"] == "vm1" for s in osc.json("server", "list"))


def test_console_log_diagnostics_and_hypervisor_show(osc, image):
    """What a real guest shows (the fake driver's simulation of it, here): its console,
    its diagnostics, the hypervisor it runs on."""
    osc.json("server", "create", "--image", image, "--flavor", "m1.tiny", "--wait", "con1")
    log = osc.run("console", "log", "show", "con1").stdout
    assert log.splitlines()[:2] == ["fake console of con1", "power state RUNNING"]
    # As Nova cuts it: the last 2 pieces split at newlines, the last one empty.
    last = osc.run("console", "log", "show", "--lines", "2", "con1").stdout
    assert last.strip() == "power state RUNNING"
    diagnostics = osc.json("server", "show", "--diagnostics", "con1")
    assert diagnostics["state"] == "running" and diagnostics["driver"] == "fake"
    assert diagnostics["num_cpus"] == 1 and diagnostics["memory_details"]["maximum"] == 512
    assert diagnostics["nic_details"] == [] and "uptime" in diagnostics
    host = osc.json("server", "show", "con1")["OS-EXT-SRV-ATTR:host"]
    hypervisor = osc.json("hypervisor", "show", host)
    assert hypervisor["hypervisor_hostname"] == host
    assert hypervisor["hypervisor_type"] == "fake" and hypervisor["state"] == "up"
    # The CLI asks for 2.88, where Nova dropped cpu_info and the usage; an older
    # microversion shows them, cpu_info with the CPU model and the accelerator.
    old = osc.json("--os-compute-api-version", "2.87", "hypervisor", "show", host)
    assert old["cpu_info"]["model"] == "fake" and old["cpu_info"]["accel"] == "none"
    assert old["vcpus_used"] >= 1 and old["running_vms"] >= 1
    osc.run("server", "stop", "con1")
    wait_status(osc, "con1", "SHUTOFF")
    refused = osc.run("server", "show", "--diagnostics", "con1", check=False)
    assert refused.returncode != 0 and "while it is in power state shutdown" in refused.stderr
    assert "fake console of con1" in osc.run("console", "log", "show", "con1").stdout
    osc.run("server", "delete", "--wait", "con1")


def test_quota_refuses_over_limit(osc, image):
    osc.run("quota", "set", "--instances", "1", "admin")
    shown = osc.json("quota", "show", "admin")
    assert any(r.get("Resource") == "instances" and r.get("Limit") == 1 for r in shown)
    osc.run("server", "create", "--image", image, "--flavor", "m1.tiny", "--wait", "q1")
    refused = osc.run(
        "server", "create", "--image", image, "--flavor", "m1.tiny", "q2", check=False
    )
    assert refused.returncode != 0
    assert "Quota exceeded for instances: Requested 1, but already used 1 of 1 instances" in (
        refused.stderr + refused.stdout
    )
    osc.run("server", "delete", "--wait", "q1")
    osc.run("quota", "set", "--instances", "10", "admin")


def test_openstacksdk_create_server(site_process, image):
    conn = openstack.connect(**site_process.clouds_entry()["auth"], region_name="Berlin")
    try:
        flavor = conn.compute.find_flavor("m1.tiny")
        server = conn.compute.create_server(
            name="sdk-vm", image_id=image, flavor_id=flavor.id, networks="auto"
        )
        server = conn.compute.wait_for_server(server, status="ACTIVE", wait=60)
        assert server.status == "ACTIVE"
        conn.compute.delete_server(server)
        conn.compute.wait_for_delete(server, wait=60)
    finally:
        conn.close()
