"""From ``server create`` to a real guest's console, against bare QEMU: ``qemu_api``.

What ``qemu_boot`` measures for the driver alone, here through the whole control
plane: one real ``edgefed site serve`` with the qemu driver and its local host agent
(a separate process, as ``edgefed up`` runs it), on this machine. The clock of a boot
starts when the bench sends ``POST /compute/v2.1/servers`` (with a token it already
has, as the CLI would after its login) and stops at

- the first console line (the boot loader's banner, or the kernel's first message),
- ``EDGEFED-GUEST userspace``, and the user data's marker,

as the guest's serial console log shows them. The anchor is the same tiny guest
started with a bare ``qemu-system-x86_64`` (``qemu_boot``'s command line: the same
machine, accelerator, devices, a qcow2 overlay on the same base and a config drive
with the same user data, made before its clock starts).

**How the console is observed**: on both sides the bench reads the console log file
QEMU writes (the anchor's ``-chardev file``, the guest's ``console.log`` in the agent's
state directory), the same way, every 10 ms, so neither side pays for how it is read.
A user reading the console through the API (``os-getConsoleOutput``, ``openstack
console log show``) pays one such call on top, and half the interval it polls at: the
call is timed apart, after the boots, with the CPU it costs the site and its agent.

The server has no network (``networks: none``, microversion 2.37), as the anchor has
none: the same disks and config drive on both sides. Each mode starts with one boot
through the API that fills the agent's base image cache (the image's first boot on a
host, shown apart), then ``--starts`` pairs: the anchor and the API boot one after the
other, each alone on the machine (the other's QEMU gone), the one or the other first in
turn; overhead and ratio are the medians over the pairs. Not side by side as
``qemu_boot`` does: the first console line comes within a second, while both QEMUs'
start-up and the control plane compete for two cores, and whichever starts first wins
that race (a side-by-side run at load 6 gave the API +0.9 s when the anchor started
first and −0.6 s when the API did, more than the overhead measured). Where the
control plane's time goes is read from the site's command rows (when the spawn was
queued, taken by the agent, answered) and QEMU's start time. Goal: overhead ≤ 10 % and
≤ 150 ms to the first console line (the user-data marker is judged the same way).

Everything is removed at the end, also on error: servers, the site and its agent, the
guests, the site's network namespace and its /run directory (``testkit.qemu_site``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.qemu_boot import (
    BOOT_DEADLINE_S,
    IMAGE_DIR,
    MARKER,
    POLL_S,
    RAM_MB,
    USER_DATA,
    anchor_boot,
    prepare_anchor,
    process_started,
    watch,
)
from edgefed.drivers.qemu import QemuHypervisor, QemuSettings
from edgefed.guest_image import GuestImage, build_guest_image
from edgefed.testkit.fleet_process import password_token
from edgefed.testkit.process import SiteProcess
from edgefed.testkit.qemu_site import hostnet_dir_for, qemu_config, remove_qemu_site

SITE = "Bench-Api"  # its namespace: edgefed-bench-api
HOST = "bench-api-local"
VERSION = {"OpenStack-API-Version": "compute 2.37"}  # networks: "none"
OVERHEAD_RATIO_GOAL = 1.10
OVERHEAD_MS_GOAL = 150.0
CONSOLE_CALLS = 20
ENROLL_DEADLINE_S = 120.0
GONE_DEADLINE_S = 120.0
SETTLE_S = 1.0  # after a boot's QEMU is gone: its site's reports and the deletion settle
MILESTONES = ("qemu_started", "first_line", "userspace", "marker")
PHASES = ("api_answered", "command_queued", "command_taken", "command_answered")
TOOLS = ("qemu-system-x86_64", "qemu-img", "ip", "nft", "dnsmasq")


class Site:
    """The compute and image APIs of the site, with an admin token."""

    def __init__(self, proc: SiteProcess, http: httpx.AsyncClient, token: str) -> None:
        self.proc = proc
        self.http = http
        self.headers = {"X-Auth-Token": token}
        self.guests = proc.data_dir / "agent" / "qemu" / "guests"

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers, **VERSION, **kwargs.pop("headers", {})}
        r = await self.http.request(method, path, headers=headers, **kwargs)
        r.raise_for_status()
        return r

    async def image(self, name: str, data: Path, disk_format: str, **properties: str) -> str:
        body = {"name": name, "disk_format": disk_format, "container_format": "bare"}
        r = await self.call("POST", "/image/v2/images", json={**body, **properties})
        image_id = str(r.json()["id"])
        await self.call(
            "PUT",
            f"/image/v2/images/{image_id}/file",
            content=data.read_bytes(),
            headers={"Content-Type": "application/octet-stream"},
        )
        return image_id

    async def wait_enrolled(self) -> None:
        deadline = time.monotonic() + ENROLL_DEADLINE_S
        while time.monotonic() < deadline:
            r = await self.http.get(f"/edge/v1/hosts/{HOST}", headers=self.headers)
            if r.status_code == 200 and r.json()["host"].get("availability") == "available":
                return
            await asyncio.sleep(0.5)
        raise RuntimeError(f"the site's local agent did not enroll:\n{self.proc.log_tail()}")

    async def server(self, server_id: str) -> dict[str, Any] | None:
        r = await self.http.get(
            f"/compute/v2.1/servers/{server_id}", headers={**self.headers, **VERSION}
        )
        if r.status_code == 404:
            return None
        r.raise_for_status()
        found: dict[str, Any] = r.json()["server"]
        return found

    async def delete(self, server_id: str) -> None:
        """Delete the server and wait until it (and so its QEMU) is gone."""
        r = await self.http.delete(f"/compute/v2.1/servers/{server_id}", headers=self.headers)
        if r.status_code not in (204, 404):
            r.raise_for_status()
        deadline = time.monotonic() + GONE_DEADLINE_S
        while await self.server(server_id) is not None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"server {server_id} was not deleted")
            await asyncio.sleep(0.2)


async def _fail_on_error(site: Site, server_id: str) -> None:
    """Raise if the server goes to ERROR; the same poll as ``server create --wait``."""
    while True:
        await asyncio.sleep(2.0)
        server = await site.server(server_id)
        if server is None or server["status"] == "ERROR":
            fault = (server or {}).get("fault", {}).get("message", "deleted")
            raise RuntimeError(f"server {server_id} failed: {fault}\n{site.proc.log_tail()}")
        if server["status"] == "ACTIVE":
            return


async def first_line(log: Path, started: float) -> dict[str, float]:
    """Seconds from ``started`` to the first console line (read as ``watch`` does)."""
    while time.monotonic() - started < BOOT_DEADLINE_S:
        with contextlib.suppress(FileNotFoundError):
            if b"\n" in log.read_bytes():
                return {"first_line": time.monotonic() - started}
        await asyncio.sleep(POLL_S)
    raise TimeoutError(f"{log}: no console line within {BOOT_DEADLINE_S:.0f} s")


async def api_boot(
    site: Site,
    image_id: str,
    flavor_id: str,
    name: str,
    *,
    networks: Any = "none",
    whole: bool = True,
) -> dict[str, Any]:
    """One server through the API; to its user-data marker (``whole``) or only to its
    first console line."""
    body = {
        "server": {
            "name": name,
            "imageRef": image_id,
            "flavorRef": flavor_id,
            "networks": networks,
            "user_data": base64.b64encode(USER_DATA).decode(),
        }
    }
    started, since = time.monotonic(), time.clock_gettime(time.CLOCK_BOOTTIME)
    wall = time.time()
    r = await site.call("POST", "/compute/v2.1/servers", json=body)
    answered = time.monotonic() - started
    server_id = str(r.json()["server"]["id"])
    files = site.guests / server_id
    checker = asyncio.create_task(_fail_on_error(site, server_id))
    watcher = asyncio.create_task((watch if whole else first_line)(files / "console.log", started))
    try:
        done, _ = await asyncio.wait([checker, watcher], return_when=asyncio.FIRST_COMPLETED)
        if watcher not in done:
            checker.result()  # ACTIVE, or raises what went wrong
        seen = await watcher
    finally:
        checker.cancel()
        watcher.cancel()
    pid = int((files / "qemu.pid").read_text().split()[0])
    return {
        **seen,
        "api_answered": answered,
        "qemu_started": process_started(pid, since),
        "server_id": server_id,
        "wall_start": wall,
    }


async def paired_boot(
    site: Site,
    accel: str,
    image: GuestImage,
    mode: str,
    image_id: str,
    flavor_id: str,
    scratch: Path,
    *,
    first: str,
    name: str,
) -> tuple[dict[str, float], dict[str, Any]]:
    """The anchor and a server, one after the other, ``first`` first; (anchor, api).
    Each boot's QEMU is gone (the server deleted) before the next starts."""
    argv, log = await prepare_anchor(accel, image, mode, scratch)

    async def through_api() -> dict[str, Any]:
        boot = await api_boot(site, image_id, flavor_id, name)
        await site.delete(boot["server_id"])
        return boot

    if first == "anchor":
        anchor = await anchor_boot(argv, log)
        await asyncio.sleep(SETTLE_S)
        api = await through_api()
    else:
        api = await through_api()
        await asyncio.sleep(SETTLE_S)
        anchor = await anchor_boot(argv, log)
    await asyncio.sleep(SETTLE_S)
    return anchor, api


def spawn_phases(db: Path, boots: list[dict[str, Any]]) -> None:
    """Add to each boot where its spawn command was, from the site's rows (seconds from
    the POST, the same host clock): queued (API, scheduler, ports, spec), taken by the
    agent (its long poll), answered (QEMU runs: the agent's spawn)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        for boot in boots:
            row = conn.execute(
                "SELECT created_at, sent_at, finished_at FROM host_commands "
                "WHERE server_id = ? AND kind = 'spawn' ORDER BY created_at LIMIT 1",
                (boot["server_id"],),
            ).fetchone()
            if row is None or None in row:
                continue
            created, sent, finished = (t - boot["wall_start"] for t in row)
            boot["command_queued"] = created
            boot["command_taken"] = sent
            boot["command_answered"] = finished


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summary(anchor: list[dict[str, float]], api: list[dict[str, Any]]) -> dict[str, Any]:
    side: dict[str, Any] = {}
    pairs = list(zip(anchor, api, strict=True))
    for key in MILESTONES:
        side[key] = {
            "overhead_ms": round(_median([d[key] - a[key] for a, d in pairs]) * 1000),
            "ratio": round(_median([d[key] / max(a[key], 0.01) for a, d in pairs]), 3),
            "anchor_median_s": round(_median([a[key] for a in anchor]), 3),
            "api_median_s": round(_median([d[key] for d in api]), 3),
            "anchor_best_s": round(min(a[key] for a in anchor), 3),
            "api_best_s": round(min(d[key] for d in api), 3),
        }
    side["phases_median_ms"] = {
        key: round(_median([d[key] for d in api if key in d]) * 1000) for key in PHASES
    }
    for key in ("first_line", "marker"):
        f = side[key]
        ok = f["ratio"] <= OVERHEAD_RATIO_GOAL and f["overhead_ms"] <= OVERHEAD_MS_GOAL
        f["verdict"] = "PASS" if ok else "MISS"
    side["boots"] = {"anchor": anchor, "api": api}
    return side


def _cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total


def _agent_pid(site: Site) -> int | None:
    try:
        return int((site.proc.data_dir / "agent" / "agent.pid").read_text().split()[0])
    except (OSError, ValueError):
        return None


async def console_cost(site: Site, server_id: str) -> dict[str, Any]:
    """What reading the console through the API costs: ``CONSOLE_CALLS`` calls one
    after another (the last 50 lines), their latency and the CPU of site and agent."""
    assert site.proc.proc is not None
    pids = [site.proc.proc.pid]
    agent = _agent_pid(site)
    if agent is not None:
        pids.append(agent)
    body = {"os-getConsoleOutput": {"length": 50}}
    path = f"/compute/v2.1/servers/{server_id}/action"
    await site.call("POST", path, json=body)  # a first one: connections open
    latencies: list[float] = []
    cpu_before = _cpu_ticks(pids)
    for _ in range(CONSOLE_CALLS):
        begin = time.perf_counter()
        r = await site.call("POST", path, json=body)
        latencies.append(time.perf_counter() - begin)
        assert MARKER in r.json()["output"].encode()
    cpu = (_cpu_ticks(pids) - cpu_before) / os.sysconf("SC_CLK_TCK") / CONSOLE_CALLS
    return {
        "calls": CONSOLE_CALLS,
        "median_ms": round(_median(latencies) * 1000, 1),
        "best_ms": round(min(latencies) * 1000, 1),
        "worst_ms": round(max(latencies) * 1000, 1),
        "site_and_agent_cpu_ms_per_call": round(cpu * 1000, 1),
    }


async def measure(
    settings: dict[str, Any], image: GuestImage, accel: str, proc: SiteProcess, scratch: Path
) -> dict[str, Any]:
    starts = int(settings.get("starts", 3))
    token = await asyncio.to_thread(password_token, proc.url, proc.password)
    results: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=proc.url, timeout=120) as http:
        site = Site(proc, http, token)
        await site.wait_enrolled()
        r = await site.call(
            "POST",
            "/compute/v2.1/flavors",
            json={"flavor": {"name": "bench.tiny", "vcpus": 1, "ram": RAM_MB, "disk": 1}},
        )
        flavor_id = str(r.json()["flavor"]["id"])
        disk_id = await site.image("tiny-disk", image.disk, "qcow2")
        kernel_id = await site.image("tiny-vmlinuz", image.vmlinuz, "aki")
        ramdisk_id = await site.image("tiny-initrd", image.initrd, "ari")
        images = {
            "disk": disk_id,
            "kernel": await site.image(
                "tiny-kernel-boot",
                image.disk,
                "qcow2",
                kernel_id=kernel_id,
                ramdisk_id=ramdisk_id,
                os_command_line=image.kernel_cmdline,
            ),
        }
        for mode in ("disk", "kernel"):
            print(f"bench qemu_api: {mode}: the image's first boot on the host…", flush=True)
            first = await api_boot(site, images[mode], flavor_id, f"first-{mode}")
            if mode == "disk":
                print("bench qemu_api: os-getConsoleOutput, one call after another…", flush=True)
                results["console_call"] = await console_cost(site, first["server_id"])
            await site.delete(first["server_id"])
            anchor: list[dict[str, float]] = []
            api: list[dict[str, Any]] = []
            for i in range(starts):
                order = ("anchor", "api")[i % 2]
                print(f"bench qemu_api: {mode} boots {i + 1}/{starts}, {order} first…", flush=True)
                a, d = await paired_boot(
                    site, accel, image, mode, images[mode], flavor_id, scratch,
                    first=order, name=f"{mode}-{i}",
                )  # fmt: skip
                anchor.append(a)
                api.append(d)
            spawn_phases(proc.data_dir / "site.db", [first, *api])
            if mode == "disk":
                print("bench qemu_api: servers on a network, to the first line…", flush=True)
                net = await network_boots(site, images[mode], flavor_id, starts)
                spawn_phases(proc.data_dir / "site.db", net)
                results["network"] = network_summary(net, api)
            results[mode] = summary(anchor, api)
            results[mode]["first_boot"] = {
                k: round(first[k], 3) for k in (*MILESTONES, *PHASES) if k in first
            }
    return results


async def network_boots(
    site: Site, image_id: str, flavor_id: str, count: int
) -> list[dict[str, Any]]:
    """Servers with a port on a network (a DHCP subnet), each alone, to the first line:
    the same boot as above plus the agent's network sync before QEMU starts (the tap)."""
    r = await site.call("POST", "/network/v2.0/networks", json={"network": {"name": "bench"}})
    network_id = r.json()["network"]["id"]
    subnet = {"network_id": network_id, "cidr": "10.79.0.0/24", "ip_version": 4}
    await site.call("POST", "/network/v2.0/subnets", json={"subnet": subnet})
    boots = []
    for i in range(count + 1):  # the first makes the bridge and starts dnsmasq
        boot = await api_boot(
            site, image_id, flavor_id, f"net-{i}", networks=[{"uuid": network_id}], whole=False
        )
        await site.delete(boot["server_id"])
        await asyncio.sleep(SETTLE_S)
        boots.append(boot)
    return boots


def network_summary(boots: list[dict[str, Any]], plain: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of the boots on a network (the first apart: it made the bridge and started
    dnsmasq) next to those of the paired API boots without one, same run and mode."""
    keys = (*PHASES, "qemu_started", "first_line")

    def medians(some: list[dict[str, Any]]) -> dict[str, float]:
        return {k: round(_median([b[k] for b in some if k in b]), 3) for k in keys}

    return {
        "first_on_network_s": {k: round(boots[0][k], 3) for k in keys if k in boots[0]},
        "median_s": medians(boots[1:]),
        "without_network_median_s": medians(plain),
        "boots": boots,
    }


def _host_ready() -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        raise RuntimeError(f"missing {', '.join(missing)} (make system-deps)")
    if os.geteuid() != 0:
        raise RuntimeError("the site's host network needs root")


async def _probe(state: Path) -> tuple[str, str]:
    """The accelerator the driver's probe picks here, for the site and the anchor."""
    hv = QemuHypervisor(state_dir=state, settings=QemuSettings())
    facts = await hv.open()
    await hv.close()
    return facts.accel, facts.probe.reason


def run(settings: dict[str, Any]) -> dict[str, Any]:
    _host_ready()
    image = build_guest_image(IMAGE_DIR)
    scratch = Path(tempfile.mkdtemp(prefix="edgefed-qemu-api-"))
    hostnet_dir = hostnet_dir_for(f"bench-api-{os.getpid()}")
    try:
        accel, reason = asyncio.run(_probe(scratch / "probe"))
        proc = SiteProcess(
            name=SITE,
            data_dir=scratch / "site",
            # the site's default poll wait: what a user gets
            extra_config=qemu_config(hostnet_dir, accel=accel, poll_wait=None),
        )
        try:
            print("bench qemu_api: starting a site with the qemu driver…", flush=True)
            proc.start()
            results = asyncio.run(measure(settings, image, accel, proc, scratch))
        finally:
            remove_qemu_site(proc, hostnet_dir)  # site, agent, guests, namespace, /run dir
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    results["accel"], results["accel_reason"] = accel, reason
    results["settings"] = {
        "starts": int(settings.get("starts", 3)),
        "ram_mb": RAM_MB,
        "console_poll_s": POLL_S,
    }
    results["goal"] = {
        "overhead_ratio_at_most": OVERHEAD_RATIO_GOAL,
        "overhead_ms_at_most": OVERHEAD_MS_GOAL,
    }
    return results


def render(results: dict[str, Any]) -> str:
    starts = results["settings"]["starts"]
    lines = [
        f"qemu_api: the tiny guest, {results['settings']['ram_mb']} MiB, 1 vCPU, accel "
        f"{results['accel']} ({results['accel_reason']})",
        f"{starts} pairs, one boot after the other: bare QEMU, and POST /servers to a site with"
        " the qemu driver and its agent; both consoles read from their log file every "
        f"{results['settings']['console_poll_s'] * 1000:.0f} ms; medians over the pairs",
        f"{'':28}{'bare QEMU':>11}{'API':>10}{'overhead':>11}{'ratio':>8}   best boots",
    ]
    for mode, title in (("disk", "whole-disk image"), ("kernel", "direct kernel boot")):
        side = results[mode]
        p = side["phases_median_ms"]
        lines.append(
            f"{title}: 202 after {p['api_answered']} ms, spawn queued {p['command_queued']} ms,"
            f" taken by the agent {p['command_taken']} ms, answered {p['command_answered']} ms"
        )
        for key, label in (
            ("qemu_started", "QEMU started"),
            ("first_line", "first console line"),
            ("userspace", "userspace"),
            ("marker", "user-data marker"),
        ):
            f = side[key]
            verdict = f"   {f['verdict']}" if "verdict" in f else ""
            lines.append(
                f"  {label:26}{f['anchor_median_s']:>9.2f} s{f['api_median_s']:>8.2f} s"
                f"{f['overhead_ms']:>+8d} ms{f['ratio']:>7.2f}×"
                f"   {f['anchor_best_s']:.2f} / {f['api_best_s']:.2f} s{verdict}"
            )
        fb = side["first_boot"]
        lines.append(
            f"  the image's first boot on the host (base cache filled): QEMU started "
            f"{fb['qemu_started']:.2f} s, first line {fb['first_line']:.2f} s, "
            f"marker {fb['marker']:.2f} s"
        )
    n = results["network"]
    with_net, without = n["median_s"], n["without_network_median_s"]
    lines.append(
        f"whole disk on a network (a port, DHCP), {len(n['boots']) - 1} boots: spawn taken "
        f"{with_net['command_taken'] * 1000:.0f} ms, QEMU started {with_net['qemu_started']:.2f}"
        f" s, first line {with_net['first_line']:.2f} s (without a network "
        f"{without['qemu_started']:.2f} / {without['first_line']:.2f} s); the network's first"
        f" server (bridge, dnsmasq): QEMU started {n['first_on_network_s']['qemu_started']:.2f} s"
    )
    c = results["console_call"]
    lines += [
        f"goal overhead ≤ {(OVERHEAD_RATIO_GOAL - 1) * 100:.0f} % and ≤ {OVERHEAD_MS_GOAL:.0f} ms"
        " to the first console line (the marker judged alike): PASS/MISS above",
        f"reading the console through the API instead (os-getConsoleOutput, 50 lines): "
        f"{c['median_ms']} ms a call (best {c['best_ms']}, worst {c['worst_ms']}), "
        f"{c['site_and_agent_cpu_ms_per_call']} ms CPU of site and agent a call; "
        "a poller sees a line that much plus half its interval later",
    ]
    return "\n".join(lines)
