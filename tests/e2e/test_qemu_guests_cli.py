"""Real guests through the real ``openstack`` CLI: an all-in-one site (``edgefed site
serve`` with the qemu driver starts its own host agent), QEMU under TCG, the tiny
guest image, the site's network in its own namespace.

Two guests are booted, once each, on one network with a key pair and user data;
everything after that works on those two: the console log, a ping from one to the
other, a security group rule that opens and closes a port, stop/start/reboot/delete
on the real QEMU processes, kill -9 of the agent (the guests keep running and the
restarted agent adopts them), and a restart of the site (re-adopted through the
agent). Every wait is a bounded poll of what the test asserts (``until``); the site,
its agent, the guests and the namespace are removed at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from qemu_site import built_guest_image, host_ready, qemu_site

from edgefed.drivers.hostnet import namespace_name
from edgefed.testkit.agents import host_json
from edgefed.testkit.osc import OpenStackCLI
from edgefed.testkit.process import SiteProcess, pid_alive, qemu_processes
from edgefed.testkit.wait import until

TAG = f"qg{os.getpid()}"
SITE = f"Q{TAG}"
SUBNET, GATEWAY, IP_A, IP_B = "10.78.0.0/24", "10.78.0.1", "10.78.0.11", "10.78.0.12"
BOOT = 180.0  # seconds a TCG guest may take to boot on a loaded 2-core machine


pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(900),  # three TCG boots and two restarts on a shared 2-core machine
    pytest.mark.skipif(not host_ready(), reason="needs root, QEMU, ip, nft, dnsmasq, tun"),
]


def user_data(marker: str, ping: str | None = None) -> str:
    # The key pair's public key, as the guest took it from its config drive.
    script = (
        f"#!/bin/sh\necho USERDATA-{marker}-$(hostname)\n"
        "echo KEY-$(cut -d' ' -f2 /root/.ssh/authorized_keys | cut -c1-24)\n"
    )
    if ping is not None:
        # In the guest, in the background: the test waits for the marker, not for this.
        script += (
            f"(for i in $(seq 120); do ping -c 1 -W 1 {ping} >/dev/null 2>&1 && "
            f"{{ echo PEER-PING-OK-{ping}; break; }}; sleep 1; done) &\n"
        )
    return script


def qemu_pid(server_id: str) -> int | None:
    """The QEMU process running the guest (found by its -uuid), or None."""
    for pid, argv in qemu_processes():
        if b"-uuid" in argv and server_id.encode() in argv:
            return pid
    return None


@pytest.fixture(scope="module")
def guest_disk() -> Path:
    return built_guest_image().disk


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SiteProcess]:
    with qemu_site(
        SITE,
        TAG,
        tmp_path_factory.mktemp("qemu-site"),
        extra="host_heartbeat_timeout_seconds = 6.0\n",
    ) as proc:
        yield proc


def host_fetches(url: str) -> bool:
    """Whether the host (the site's namespace, on the network's gateway address) gets
    a page from a guest."""
    argv = ["ip", "netns", "exec", namespace_name(SITE), "busybox", "timeout", "3",
            "busybox", "wget", "-q", "-O", "-", url]  # fmt: skip
    said = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    return said.returncode == 0


def test_two_guests_boot_talk_obey_rules_and_outlive_their_agent(site, guest_disk, tmp_path):
    osc = OpenStackCLI(auth_url=site.auth_url, password=site.password, timeout=180)
    image = osc.json("image", "create", "--disk-format", "qcow2", "--container-format", "bare",
                     "--file", str(guest_disk), "--public", "tiny")["id"]  # fmt: skip
    osc.run("flavor", "create", "--vcpus", "1", "--ram", "128", "--disk", "1", "g.tiny")
    net = osc.json("network", "create", "g-net")["id"]
    osc.run("subnet", "create", "--network", net, "--subnet-range", SUBNET, "--gateway", GATEWAY,
            "g-subnet")  # fmt: skip
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "key")],
                   check=True)  # fmt: skip
    osc.run("keypair", "create", "--public-key", str(tmp_path / "key.pub"), "g-key")
    public_key = (tmp_path / "key.pub").read_text().split()[1]

    # A formats QEMU cannot run is refused before anything is built.
    iso = tmp_path / "x.iso"
    iso.write_bytes(b"\0" * 4096)
    bad = osc.json("image", "create", "--disk-format", "iso", "--container-format", "bare",
                   "--file", str(iso), "not-runnable")["id"]  # fmt: skip
    refused = osc.run("server", "create", "--image", bad, "--flavor", "g.tiny", "--nic",
                      f"net-id={net}", "x", check=False)  # fmt: skip
    assert refused.returncode != 0 and "disk format iso" in refused.stderr

    # The site's own host takes guests once its agent has enrolled and reported.
    host = f"{SITE.lower()}-local"
    until(lambda: host_json(site, host)["availability"] == "available", within=60,
          what="the local agent enrolled")  # fmt: skip

    ids = {}
    for name, ip, data in (
        ("guest-a", IP_A, user_data("A", ping=IP_B)),
        ("guest-b", IP_B, user_data("B")),
    ):
        (tmp_path / f"{name}.sh").write_text(data)
        ids[name] = osc.json(
            "server", "create", "--image", image, "--flavor", "g.tiny", "--key-name", "g-key",
            "--nic", f"net-id={net},v4-fixed-ip={ip}", "--user-data", str(tmp_path / f"{name}.sh"),
            name,
        )["id"]  # fmt: skip
    a, b = ids["guest-a"], ids["guest-b"]

    def status(server: str) -> str:
        return str(osc.json("server", "show", server)["status"])

    def console(server: str) -> str:
        return osc.run("console", "log", "show", server).stdout

    def active(server: str) -> bool:
        shown = osc.json("server", "show", server)
        assert shown["status"] != "ERROR", shown.get("fault")
        return shown["status"] == "ACTIVE"

    for server in (a, b):
        until(lambda s=server: active(s), within=BOOT, every=1, what=f"{server} ACTIVE")
        assert qemu_pid(server) is not None
    shown = osc.json("server", "show", a)
    assert shown["OS-EXT-SRV-ATTR:host"] == host
    assert IP_A in str(shown["addresses"])

    # The guests boot as OpenStack guests: config drive, key, user data; A pings B.
    until(lambda: "EDGEFED-GUEST ready" in console(b), within=BOOT, every=1, what="B ready")
    until(lambda: "EDGEFED-GUEST ready" in console(a), within=BOOT, every=1, what="A ready")
    log_a = console(a)
    assert f"uuid={a} name=guest-a" in log_a
    assert "USERDATA-A-guest-a" in log_a
    assert "USERDATA-B-guest-b" in console(b)
    until(lambda: f"PEER-PING-OK-{IP_B}" in console(a), within=120, every=1, what="A pings B")
    assert f"KEY-{public_key[:24]}" in log_a  # the key pair reached the guest

    # Security groups: the host is not in the default group, so B's web page is closed
    # to it until a rule opens port 80, and closed again once the rule is gone.
    url = f"http://{IP_B}/"
    assert not host_fetches(url)
    rule = osc.json("security", "group", "rule", "create", "--protocol", "tcp", "--dst-port",
                    "80", "--remote-ip", "0.0.0.0/0", "default")["id"]  # fmt: skip
    until(lambda: host_fetches(url), within=30, every=0.5, what="port 80 open")
    osc.run("security", "group", "rule", "delete", rule)
    until(lambda: not host_fetches(url), within=30, every=0.5, what="port 80 closed")

    # Stop, start, reboot: the real QEMU process goes and a new one comes.
    pid_a = qemu_pid(a)
    assert pid_a is not None
    osc.run("server", "stop", a)
    until(lambda: status(a) == "SHUTOFF", within=120, every=1, what="A SHUTOFF")
    assert qemu_pid(a) is None and not pid_alive(pid_a)
    osc.run("server", "start", a)
    until(lambda: status(a) == "ACTIVE", within=120, every=1, what="A ACTIVE again")
    new_a = qemu_pid(a)
    assert new_a is not None and new_a != pid_a
    pid_b = qemu_pid(b)
    assert pid_b is not None
    osc.run("server", "reboot", "--hard", b)
    until(lambda: status(b) == "ACTIVE" and qemu_pid(b) not in (None, pid_b), within=120,
          every=1, what="B rebooted into a new QEMU")  # fmt: skip

    # kill -9 of the agent: the guests keep running; the site starts it again and the
    # new agent adopts them (it answers for them).
    agent_pid_file = site.data_dir / "agent" / "agent.pid"
    agent_pid = int(agent_pid_file.read_text())
    running = {a: qemu_pid(a), b: qemu_pid(b)}
    os.kill(agent_pid, signal.SIGKILL)
    until(lambda: not pid_alive(agent_pid), within=10, what="the agent gone")
    assert all(pid is not None and pid_alive(pid) for pid in running.values())
    until(lambda: int(agent_pid_file.read_text()) != agent_pid, within=30, what="a new agent")
    assert "EDGEFED-GUEST ready" in console(b)
    assert {s: qemu_pid(s) for s in running} == running
    assert status(a) == status(b) == "ACTIVE"

    # A restart of the site: its agent restarts with it and re-adopts the guests.
    site.restart()
    osc = OpenStackCLI(auth_url=site.auth_url, password=site.password, timeout=180)
    assert status(a) == status(b) == "ACTIVE"
    until(lambda: "EDGEFED-GUEST ready" in console(a), within=60, every=1, what="A after restart")
    assert {s: qemu_pid(s) for s in running} == running

    # A snapshot is a real copy of the disk: a guest booted from it counts B's boots.
    snap = osc.json("server", "image", "create", "--name", "snap-b", "--wait", b)
    shown_image = osc.json("image", "show", snap["id"])
    assert shown_image["status"] == "active" and shown_image["disk_format"] == "qcow2"
    assert not list((site.data_dir / "agent" / "qemu" / "snapshots").iterdir())
    c = osc.json("server", "create", "--image", snap["id"], "--flavor", "g.tiny", "--nic",
                 "none", "guest-c")["id"]  # fmt: skip
    until(lambda: active(c), within=BOOT, every=1, what="C from the snapshot ACTIVE")
    until(lambda: "EDGEFED-GUEST ready" in console(c), within=BOOT, every=1, what="C ready")
    counts = [int(line.rsplit("boot-count=", 1)[1].split()[0])
              for line in console(c).splitlines() if "boot-count=" in line]  # fmt: skip
    assert counts and counts[-1] >= 3  # B booted, rebooted; C is its third boot
    running[c] = qemu_pid(c)

    # Delete: the QEMU processes go, and so do the servers.
    for server, pid in running.items():
        assert pid is not None
        osc.run("server", "delete", server)
        until(lambda p=pid: not pid_alive(p), within=60, what=f"QEMU {pid} gone")
    until(lambda: not osc.json("server", "list"), within=60, what="no servers")
