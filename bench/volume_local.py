"""``python -m bench volume``, mode **local**: a site's volume attached to a guest on the
same host, against the same I/O on the volume's file from the host.

One real ``edgefed site serve`` with the qemu driver and its local host agent (as
``qemu_api``); one empty 1 GiB volume (a sparse raw file, ``volumes/<id>.raw`` in the
site's data directory) and one tiny guest (1 vCPU, 128 MiB, no network) whose user
data is ``volume_io.guest_script``. Then ``--starts`` rounds, each:

1. **anchor**: the suite (``volume_io.SUITE``) run by ``volio`` on the host against the
   volume's file, opened as QEMU opens it (``blockdev-add`` of the file driver with its
   defaults: the host's page cache, ``cache.direct=off``; the syncs where the guest's
   go), while the volume is detached; then the same with ``O_DIRECT`` on the host, for
   context: the disk without the page cache, a path the guest's I/O does not take.
2. **attach**: ``POST /compute/v2.1/servers/{id}/os-volume_attachments``. The clock
   starts at the request and stops at its answer (the agent has done ``blockdev-add`` +
   ``device_add``), at the guest kernel's ``virtio_blk … [vdX] … logical blocks`` line
   on the console, and at the guest's ``VOLBENCH seen`` (the disk's uevent reached its
   watcher, which read the volume's serial). The bench reads the console log file QEMU
   writes every 10 ms, as ``qemu_api`` does. Where the time goes: the site's
   ``host_commands`` row of the attach (queued, taken by the agent, answered). Goal:
   **the guest sees the disk within 1 s** (median).
3. **guest I/O**: the guest runs the suite on the volume (``O_DIRECT``: its page cache
   is out of the way) and prints one line per test; the bench waits for ``done``.
4. **detach**: ``DELETE …/os-volume_attachments/{volume}``, answered once the guest has
   released the disk (``DEVICE_DELETED``), and the guest's ``VOLBENCH gone``.

Reads come from the host's page cache on both sides of the ratio (each side reads what
it has just written; QEMU's file driver goes through that cache): the ratio is what the
guest's path costs (guest kernel, virtio, QEMU's block layer), not the disk's speed.

Everything is removed at the end, also on error: the server, the site and its agent,
the guest, the site's namespace and its /run directory (``testkit.qemu_site``).
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.qemu_boot import RAM_MB
from bench.volume_io import (
    GUEST_FLAGS,
    HOST_POLL_S,
    MIB,
    REGION,
    SUITE,
    attach_summary,
    guest_script,
    host_suite,
    io_summary,
    parse_round,
)
from edgefed.guest_image import GuestImage
from edgefed.testkit.fleet_process import password_token
from edgefed.testkit.qemu_site import qemu_site

SITE = "Bench-Vol"  # its namespace: edgefed-bench-vol
HOST = "bench-vol-local"
COMPUTE = {"OpenStack-API-Version": "compute 2.37"}  # networks: "none"
VOLUME_GB = 1
ATTACH_GOAL_S = 1.0
ENROLL_DEADLINE_S = 120.0
BOOT_DEADLINE_S = 300.0
SEEN_DEADLINE_S = 60.0
SUITE_DEADLINE_S = 900.0
SETTLE_S = 1.0
KERNEL_LINE = re.compile(rb"\[vd[a-z]+\] \d+ 512-byte logical blocks")


class Api:
    """The site's APIs with an admin token; compute calls at microversion 2.37."""

    def __init__(self, http: httpx.AsyncClient, token: str) -> None:
        self.http = http
        self.headers = {"X-Auth-Token": token}

    async def call(
        self, method: str, path: str, *, compute: bool = False, **kwargs: Any
    ) -> httpx.Response:
        headers = {**self.headers, **(COMPUTE if compute else {}), **kwargs.pop("headers", {})}
        r = await self.http.request(method, path, headers=headers, **kwargs)
        if r.is_error:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:300]}")
        return r


async def wait_enrolled(api: Api, host: str = HOST) -> None:
    deadline = time.monotonic() + ENROLL_DEADLINE_S
    while time.monotonic() < deadline:
        r = await api.http.get(f"/edge/v1/hosts/{host}", headers=api.headers)
        if r.status_code == 200 and r.json()["host"].get("availability") == "available":
            return
        await asyncio.sleep(0.5)
    raise RuntimeError("the site's local agent did not enroll")


async def watch(
    log: Path, offset: int, wanted: dict[str, re.Pattern[bytes]], started: float, within: float
) -> dict[str, float]:
    """Seconds from ``started`` until each pattern shows in ``log`` after ``offset``.
    Returns once the last of ``wanted`` shows; a pattern named ``…?`` is optional:
    recorded if it showed by then."""
    seen: dict[str, float] = {}
    required = [k for k in wanted if not k.endswith("?")]
    while time.monotonic() - started < within:
        with open(log, "rb") as f:
            f.seek(offset)
            data = f.read()
        now = time.monotonic() - started
        for key, pattern in wanted.items():
            if key.rstrip("?") not in seen and pattern.search(data):
                seen[key.rstrip("?")] = now
        if all(k in seen for k in required):
            return seen
        await asyncio.sleep(HOST_POLL_S)
    raise TimeoutError(f"{log}: only {sorted(seen)} of {sorted(wanted)} within {within:.0f} s")


def _size(log: Path) -> int:
    return log.stat().st_size


def cpu_seconds(pid: int) -> float:
    """The process's CPU time so far (user + system), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def boot(
    api: Api,
    guests: Path,
    image_id: str,
    flavor_id: str,
    user_data: bytes,
    *,
    name: str = "volbench",
    networks: str | list[dict[str, str]] = "none",
) -> tuple[str, Path]:
    """The guest, booted through the API, its watcher armed; (server id, console log)."""
    body = {
        "server": {
            "name": name,
            "imageRef": image_id,
            "flavorRef": flavor_id,
            "networks": networks,
            "user_data": base64.b64encode(user_data).decode(),
        }
    }
    r = await api.call("POST", "/compute/v2.1/servers", compute=True, json=body)
    server_id = str(r.json()["server"]["id"])
    log = guests / server_id / "console.log"
    deadline = time.monotonic() + BOOT_DEADLINE_S
    checked = 0.0
    while time.monotonic() < deadline:
        if log.exists() and b"VOLBENCH armed" in log.read_bytes():
            return server_id, log
        if time.monotonic() - checked > 2.0:
            checked = time.monotonic()
            server = (await api.call("GET", f"/compute/v2.1/servers/{server_id}")).json()
            if server["server"]["status"] == "ERROR":
                raise RuntimeError(f"the guest failed: {server['server'].get('fault')}")
        await asyncio.sleep(0.2)
    raise TimeoutError(f"the guest did not arm its watcher within {BOOT_DEADLINE_S:.0f} s")


async def attach(
    api: Api,
    server_id: str,
    volume_id: str,
    log: Path,
    round_no: int,
    headers: dict[str, str] | None = None,
) -> dict[str, float]:
    path = f"/compute/v2.1/servers/{server_id}/os-volume_attachments"
    wanted = {
        "attach_guest_kernel?": KERNEL_LINE,
        "attach_guest_seen": re.compile(rf"VOLBENCH seen round={round_no} ".encode()),
    }
    offset, wall = _size(log), time.time()
    started = time.monotonic()
    watcher = asyncio.create_task(watch(log, offset, wanted, started, SEEN_DEADLINE_S))
    try:
        body = {"volumeAttachment": {"volumeId": volume_id}}
        await api.call("POST", path, json=body, headers=headers or {})
        answered = time.monotonic() - started
        seen = await watcher
    finally:
        watcher.cancel()
    return {"attach_api": answered, **seen, "attach_wall": wall}


async def detach(
    api: Api,
    server_id: str,
    volume_id: str,
    log: Path,
    round_no: int,
    headers: dict[str, str] | None = None,
) -> dict[str, float]:
    path = f"/compute/v2.1/servers/{server_id}/os-volume_attachments/{volume_id}"
    wanted = {"detach_guest_gone": re.compile(rf"VOLBENCH gone round={round_no} ".encode())}
    offset, wall = _size(log), time.time()
    started = time.monotonic()
    watcher = asyncio.create_task(watch(log, offset, wanted, started, SEEN_DEADLINE_S))
    try:
        await api.call("DELETE", path, headers=headers or {})
        answered = time.monotonic() - started
        seen = await watcher
    finally:
        watcher.cancel()
    return {"detach_api": answered, **seen, "detach_wall": wall}


def command_phases(db: Path, server_id: str, cycles: list[dict[str, float]]) -> None:
    """Add to each cycle where its attach and detach commands were, from the site's
    rows (seconds from the request, the same host clock): queued (the site's work
    before it: for an attach the volume's connection), taken by the agent (its long
    poll woken), answered (the agent's QMP work done)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        for kind in ("attach", "detach"):
            rows = conn.execute(
                "SELECT created_at, sent_at, finished_at FROM host_commands "
                "WHERE server_id = ? AND kind = ? ORDER BY created_at",
                (server_id, f"{kind}_volume"),
            ).fetchall()
            for cycle, (created, sent, finished) in zip(cycles, rows):
                wall = cycle[f"{kind}_wall"]
                cycle[f"{kind}_command_queued"] = created - wall
                if sent is not None and finished is not None:
                    cycle[f"{kind}_command_taken"] = sent - wall
                    cycle[f"{kind}_command_answered"] = finished - wall


async def measure(
    settings: dict[str, Any], image: GuestImage, volio: Path, proc: Any
) -> dict[str, Any]:
    rounds = int(settings.get("starts", 3))
    token = await asyncio.to_thread(password_token, proc.url, proc.password)
    guests = proc.data_dir / "agent" / "qemu" / "guests"
    async with httpx.AsyncClient(base_url=proc.url, timeout=300) as http:
        api = Api(http, token)
        await wait_enrolled(api)
        flavor = {"flavor": {"name": "bench.vol", "vcpus": 1, "ram": RAM_MB, "disk": 1}}
        r = await api.call("POST", "/compute/v2.1/flavors", json=flavor)
        flavor_id = str(r.json()["flavor"]["id"])
        body = {"name": "tiny", "disk_format": "qcow2", "container_format": "bare"}
        image_id = str((await api.call("POST", "/image/v2/images", json=body)).json()["id"])
        await api.call(
            "PUT",
            f"/image/v2/images/{image_id}/file",
            content=image.disk.read_bytes(),
            headers={"Content-Type": "application/octet-stream"},
        )
        volume = {"volume": {"size": VOLUME_GB, "name": "bench-vol"}}
        r = await api.call("POST", "/volume/v3/volumes", json=volume)
        volume_id = str(r.json()["volume"]["id"])
        raw = proc.data_dir / "volumes" / f"{volume_id}.raw"
        if not raw.is_file():
            raise RuntimeError(f"the volume's file is not where the bench reads it: {raw}")
        print("bench volume: local: booting the guest…", flush=True)
        user_data = guest_script(volume_id[:20], volio.read_bytes())
        server_id, log = await boot(api, guests, image_id, flavor_id, user_data)
        qemu_pid = int((guests / server_id / "qemu.pid").read_text().split()[0])
        anchor: list[dict[str, dict[str, int]]] = []
        direct: list[dict[str, dict[str, int]]] = []
        guest: list[dict[str, dict[str, int]]] = []
        cycles: list[dict[str, float]] = []
        idle_qemu: list[float] = []
        for n in range(1, rounds + 1):
            print(f"bench volume: local: round {n}/{rounds}: the host's I/O…", flush=True)
            cpu, began = cpu_seconds(qemu_pid), time.monotonic()
            anchor.append(await host_suite(volio, raw, ""))
            direct.append(await host_suite(volio, raw, "direct"))
            idle_qemu.append((cpu_seconds(qemu_pid) - cpu) / (time.monotonic() - began))
            await asyncio.sleep(SETTLE_S)
            print(f"bench volume: local: round {n}/{rounds}: attach, the guest's I/O…", flush=True)
            offset = _size(log)
            cycle = await attach(api, server_id, volume_id, log, n)
            done = {"done": re.compile(rf"VOLBENCH done round={n}\b".encode())}
            await watch(log, offset, done, time.monotonic(), SUITE_DEADLINE_S)
            guest.append(parse_round(log.read_text(errors="replace"), n))
            await asyncio.sleep(SETTLE_S)
            cycle.update(await detach(api, server_id, volume_id, log, n))
            cycles.append(cycle)
            await asyncio.sleep(SETTLE_S)
        command_phases(proc.data_dir / "site.db", server_id, cycles)
        await api.call("DELETE", f"/compute/v2.1/servers/{server_id}")
    context = io_summary(direct, guest)
    timings = [{k: v for k, v in c.items() if not k.endswith("_wall")} for c in cycles]
    return {
        "attach": attach_summary(timings, ATTACH_GOAL_S),
        "cycles": timings,
        "io": io_summary(anchor, guest),
        "host_direct": {name: side["anchor"] for name, side in context.items()},
        "idle_guest_qemu_cpu_share": round(max(idle_qemu), 3),
        "idle_guest_qemu_cpu_share_rounds": [round(x, 3) for x in idle_qemu],
        "rounds": {"anchor": anchor, "host_direct": direct, "guest": guest},
        "volume_gb": VOLUME_GB,
        "region_mib": REGION // MIB,
        "guest_flags": GUEST_FLAGS,
        "rounds_count": rounds,
    }


def run(
    settings: dict[str, Any], image: GuestImage, volio: Path, scratch: Path, accel: str
) -> dict[str, Any]:
    tag = f"bench-vol-{os.getpid()}"  # its host network's state: /run/edgefed-bench-vol-<pid>
    data = scratch / "site"
    print("bench volume: local: starting a site with the qemu driver…", flush=True)
    with qemu_site(SITE, tag, data, accel=accel, poll_wait=None, show_log=False) as proc:
        try:
            return asyncio.run(measure(settings, image, volio, proc))
        except BaseException:
            print(proc.log_tail(60), file=sys.stderr)
            raise


def _throughput(side: dict[str, float], bs_small: bool) -> str:
    return f"{side['iops']:,.0f} op/s" if bs_small else f"{side['mib_s']:,.1f} MiB/s"


def render(local: dict[str, Any]) -> str:
    a = local["attach"]
    n = local["rounds_count"]

    def ms(key: str) -> str:
        f = a.get(key)
        return "n/a" if f is None else f"{f['median_s'] * 1000:,.0f} ms"

    lines = [
        f"local: a {local['volume_gb']} GiB volume of the site (a raw file in its data "
        f"directory) hot-plugged into a running guest on the same host; {n} rounds, medians",
        f"  attach, from the POST: answered {ms('attach_api')} (its command queued at "
        f"{ms('attach_command_queued')}, taken by the agent at {ms('attach_command_taken')}, "
        f"its QMP work done at "
        f"{ms('attach_command_answered')}); the guest's kernel probed the disk at "
        f"{ms('attach_guest_kernel')}; the guest saw it at {ms('attach_guest_seen')} "
        f"(its uevent; best {a['attach_guest_seen']['best_s'] * 1000:,.0f}, worst "
        f"{a['attach_guest_seen']['worst_s'] * 1000:,.0f})",
        f"  goal: the guest sees the disk < {ATTACH_GOAL_S:.0f} s after the POST: {a['verdict']}",
        f"  detach, from the DELETE: answered {ms('detach_api')} (the guest released the "
        f"disk; the agent took the command at {ms('detach_command_taken')}, QEMU's "
        f"DEVICE_DELETED and blockdev-del done at {ms('detach_command_answered')}); the guest "
        f"saw it gone at {ms('detach_guest_gone')}",
        f"  I/O on the volume's first {local['region_mib']} MiB: the guest (O_DIRECT on the"
        " disk) against the anchor, the same program and pattern on the volume's file from "
        "the host as QEMU opens it (page cache, the same syncs); ratio = guest ÷ anchor, "
        "median of the rounds' ratios",
        f"  {'test':40}{'guest':>14}{'anchor':>16}{'ratio':>9}"
        f"{'p50 guest':>12}{'anchor':>10}{'added':>10}{'host O_DIRECT':>16}",
    ]
    for test in SUITE:
        row = local["io"].get(test.name)
        if row is None:
            continue
        small = test.bs < MIB
        g, an, d = row["guest"], row["anchor"], local["host_direct"][test.name]
        lines.append(
            f"  {test.label:40}{_throughput(g, small):>14}{_throughput(an, small):>16}"
            f"{row['throughput_ratio']:>9.3f}{g['p50_us']:>9,.0f} µs{an['p50_us']:>7,.0f} µs"
            f"{row['added_p50_us']:>+7,.0f} µs{_throughput(d, small):>16}"
        )
    lines.append(
        f"  the idle guest's QEMU used "
        f"{local['idle_guest_qemu_cpu_share']:.0%} of a core while the host's I/O ran "
        "(worst round); host O_DIRECT: the disk without the page cache, for context "
        "(not the guest's path)"
    )
    return "\n".join(lines)
