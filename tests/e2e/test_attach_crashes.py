"""kill -9 during ``openstack server add volume``, on the real stack: an all-in-one site
with the qemu driver (its own host agent, QEMU under TCG, the tiny guest image), the
real ``openstack`` CLI (issue #15: "kill -9 of either agent or site during attach
leaves a state that a retry completes").

The crash point is the same, and deterministic, both times: the attach_volume command
has been handed to the agent (its row in the site's ``host_commands`` is ``sent``) and
nothing of it has reached the guest. The guest's QEMU is held (SIGSTOP) before the
attach is asked, so its monitor answers no hot-plug; then

1. the agent is killed (kill -9) and QEMU let go. The site starts a new agent, whose
   first poll says it restarted: the command is sent again, the new agent plugs the
   disk and the ``server add volume`` under way completes by itself (had it failed
   instead, it would have to say why, and a second one complete);
2. the site is killed (kill -9; its agent dies with it, PR_SET_PDEATHSIG) and started
   again: the ``server add volume`` under way failed (its connection dropped), the
   volume says ``attaching``, ``available`` or ``in-use``, nothing else, the server is
   ACTIVE, and ``server add volume`` asked again completes.

Each time the volume ends ``in-use``, attached to the server at one device, the server
lists it once, no command stays open, and the guest (which prints every disk it finds
on its serial console, ``volume_guest.disk_watcher``) found it exactly once. Every wait
is a bounded poll (``until``); the site, its agent, the guest and the namespace are
removed at the end (``qemu_site``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from qemu_site import built_guest_image, host_ready, qemu_site
from volume_guest import disk_watcher

from edgefed.testkit.agents import host_json
from edgefed.testkit.osc import OpenStackCLI, openstack_binary
from edgefed.testkit.process import SiteProcess, pid_alive
from edgefed.testkit.wait import until

TAG = f"ac{os.getpid()}"
SITE = f"A{TAG}"
BOOT = 240.0  # seconds a TCG guest may take to boot on a loaded 2-core machine


pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(600),
    pytest.mark.skipif(not host_ready(), reason="needs root, QEMU, ip, nft, dnsmasq, tun"),
]


@pytest.fixture(scope="module")
def guest_disk() -> Path:
    return built_guest_image().disk


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SiteProcess]:
    with qemu_site(SITE, TAG, tmp_path_factory.mktemp("attach-crash-site")) as proc:
        yield proc


def attach_commands(site: SiteProcess, server: str) -> list[tuple[str, str, str]]:
    """The server's attach_volume commands in the site's queue: (id, state, payload)."""
    db = sqlite3.connect(f"file:{site.data_dir / 'site.db'}?mode=ro", uri=True, timeout=10)
    try:
        rows = db.execute(
            "SELECT id, state, payload FROM host_commands WHERE server_id = ? AND "
            "kind = 'attach_volume' ORDER BY created_at",
            (server,),
        ).fetchall()
    finally:
        db.close()
    return [(str(i), str(s), str(p)) for i, s, p in rows]


def sent_for(site: SiteProcess, server: str, volume: str) -> bool:
    return any(s == "sent" and volume in p for _, s, p in attach_commands(site, server))


def qemu_pid(server_id: str) -> int:
    """The QEMU process running the guest (found by its -uuid)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"-uuid" in argv and server_id.encode() in argv and b"qemu-system" in argv[0]:
            return int(pid)
    raise AssertionError(f"no QEMU runs {server_id}")


@contextmanager
def frozen(pid: int) -> Iterator[None]:
    """The guest's QEMU stopped (SIGSTOP): its monitor does not answer, so an agent
    that was sent a hot-plug cannot have done any of it. Continued at the end."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


@contextmanager
def attach_in_background(osc: OpenStackCLI, server: str, volume: str) -> Iterator[
    subprocess.Popen[str]
]:  # fmt: skip
    proc = subprocess.Popen(
        [openstack_binary(), "server", "add", "volume", server, volume],
        env=osc.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def test_kill_agent_or_site_during_attach_then_retry_completes(site, guest_disk, tmp_path):
    osc = OpenStackCLI(auth_url=site.auth_url, password=site.password, timeout=240)
    image = osc.json("image", "create", "--disk-format", "qcow2", "--container-format", "bare",
                     "--file", str(guest_disk), "--public", "tiny")["id"]  # fmt: skip
    osc.run("flavor", "create", "--vcpus", "1", "--ram", "128", "--disk", "1", "a.tiny")
    host = f"{SITE.lower()}-local"
    until(lambda: host_json(site, host)["availability"] == "available", within=60,
          what="the local agent enrolled")  # fmt: skip

    def console(server: str) -> str:
        return osc.run("console", "log", "show", server).stdout

    def active(server: str) -> bool:
        shown = osc.json("server", "show", server)
        assert shown["status"] != "ERROR", shown.get("fault")
        return shown["status"] == "ACTIVE"

    def volume(volume_id: str) -> dict[str, object]:
        shown: dict[str, object] = osc.json("volume", "show", volume_id)
        return shown

    (tmp_path / "watch.sh").write_text(disk_watcher("read"))
    server = osc.json("server", "create", "--image", image, "--flavor", "a.tiny", "--nic",
                      "none", "--user-data", str(tmp_path / "watch.sh"), "guest")["id"]  # fmt: skip
    until(lambda: active(server), within=BOOT, every=1, what="the guest ACTIVE")
    until(lambda: "EDGEFED-GUEST ready" in console(server), within=BOOT, every=1,
          what="the guest booted")  # fmt: skip

    def attached_once(volume_id: str, device: str) -> None:
        """In use by the server at ``device``, once, everywhere it shows; the guest has it."""
        shown = volume(volume_id)
        assert shown["status"] == "in-use", shown
        attachments = shown["attachments"]
        assert isinstance(attachments, list)
        assert [(a["server_id"], a["device"]) for a in attachments] == [(server, device)]
        listed = osc.json("server", "show", server)["volumes_attached"]
        assert str(listed).count(volume_id) == 1, listed
        assert [s for _, s, p in attach_commands(site, server) if s in ("queued", "sent")] == []
        found = f"VOL-read-{volume_id[:20]}-"
        until(lambda: found in console(server), within=120, every=1,
              what=f"the guest found volume {volume_id}")  # fmt: skip
        assert console(server).count(found) == 1

    # 1. kill -9 of the agent once it has been sent the attach.
    guest_qemu = qemu_pid(server)
    first = osc.json("volume", "create", "--size", "1", "first")["id"]
    until(lambda: volume(first)["status"] == "available", within=60, what="first available")
    agent_pid_file = site.data_dir / "agent" / "agent.pid"
    agent_pid = int(agent_pid_file.read_text().split()[0])
    with frozen(guest_qemu), attach_in_background(osc, server, first) as attach:
        until(lambda: sent_for(site, server, first), within=60,
              what="the attach sent to the agent")  # fmt: skip
        assert volume(first)["status"] == "attaching"
        os.kill(agent_pid, signal.SIGKILL)
        until(lambda: not pid_alive(agent_pid), within=10, what="the agent gone")
        os.kill(guest_qemu, signal.SIGCONT)
        until(lambda: int(agent_pid_file.read_text().split()[0]) != agent_pid, within=60,
              what="a new agent")  # fmt: skip
        out, err = attach.communicate(timeout=240)
    if attach.returncode != 0:  # it failed: saying why, and not a server error
        assert "HTTP 5" not in err and err.strip(), err
        osc.run("server", "add", "volume", server, first)
    attached_once(first, "/dev/vdb")

    # 2. kill -9 of the site once its agent has been sent the attach; the agent dies
    # with it (SIGTERM, PR_SET_PDEATHSIG).
    second = osc.json("volume", "create", "--size", "1", "second")["id"]
    until(lambda: volume(second)["status"] == "available", within=60, what="second available")
    agent_pid = int(agent_pid_file.read_text().split()[0])
    with frozen(guest_qemu), attach_in_background(osc, server, second) as attach:
        until(lambda: sent_for(site, server, second), within=60,
              what="the attach sent to the agent")  # fmt: skip
        site.kill()
        until(lambda: not pid_alive(agent_pid), within=30, what="the agent gone with its site")
        os.kill(guest_qemu, signal.SIGCONT)
        out, err = attach.communicate(timeout=60)
    assert attach.returncode != 0  # its site died under it
    site.restart()
    osc = OpenStackCLI(auth_url=site.auth_url, password=site.password, timeout=240)
    until(lambda: int(agent_pid_file.read_text().split()[0]) != agent_pid, within=60,
          what="a new agent")  # fmt: skip
    until(lambda: host_json(site, host)["availability"] == "available", within=60,
          what="the agent back")  # fmt: skip
    assert volume(second)["status"] in ("attaching", "available", "in-use")
    assert volume(first)["status"] == "in-use"
    assert active(server)
    osc.run("server", "add", "volume", server, second)
    attached_once(second, "/dev/vdc")
    attached_once(first, "/dev/vdb")
