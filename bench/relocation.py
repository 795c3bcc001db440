"""``python -m bench relocation``: real guests moved from Berlin to Paris through the WAN
emulator (issue #16), one cold, then one mild, against a plain TCP copy of the same
bytes over a link of the same profile.

Two real sites in a fleet (``ProcessFleet``), Berlin and Paris, each with the qemu
driver, its local host agent and its own host network (``testkit.qemu_site``); every
byte between them crosses the WAN emulator at ``RTT_MS`` round trip and
``BANDWIDTH_MBIT`` each way (``bench/volume_remote.py``'s profile): each site's public
URL, which the other calls, is a link. The bench talks to each site directly.

1. A flavor of 1 vCPU, 128 MiB and a 1 GiB root disk at both sites; the tiny guest's
   whole-disk image at Berlin; two guests booted from it at Berlin, whose user data
   (``relocation_figures.user_data``) writes ``USED_MIB`` MiB of random data onto its
   disk and syncs (the tiny guest's root file system is its initramfs, in RAM: the data
   goes to the disk past its boot partition), then prints a line the bench waits for.
2. **The moves**, one after the other (the mild guest idles at Berlin while the cold
   one moves): ``POST /compute/v2.1/servers/{id}/action {"os-edge:relocate": {"site":
   "Paris", "mode": "cold"|"mild"}}`` at Berlin (what ``openstack server relocate --site
   Paris --mode … --wait`` sends), the clock started just before, the guest deleted at
   Paris once its user data read the disk back. The bench watches every ``POLL_S``: Berlin's journal
   row (its ``site.db``, read-only: each phase's first sight and each acknowledged
   chunk), Berlin's QEMU process (the guest stopped), Paris's server row (ACTIVE) and
   Paris's console log (its first line; the user data's line reading the moved data
   back), until the journal says ``done`` and the guest's line came. The bytes the
   link in front of Paris carried meanwhile.
3. **The anchor**, after the moves (the guests deleted: no guest runs): a TCP server in
   the bench behind a link of the same
   profile in the same emulator, one connection (its handshake paid first), the disk's
   size in bytes sent to it and answered by one byte (a round trip included, as the
   move's last chunk waits for its answer); twice, the mean is the anchor.

Figures, each move: total (the action to ACTIVE at Paris), its phases, bytes sent, the
downtime (Berlin's QEMU gone to ACTIVE at Paris, to Paris's first console line, to the
user data's line; the guest's shutdown before it apart), and the ratios total ÷ copy
(goal ≤ ``TOTAL_GOAL``) and transfer ÷ copy; then the mild move's downtime ÷ the cold
one's (goal < ``DOWNTIME_GOAL``).

Everything is removed at the end, also on error: the server, both sites, their agents,
guests, namespaces and /run directories (``remove_qemu_site``), the emulator's links and
the anchor's server.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import os
import shutil
import socket
import sqlite3
import struct
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench.qemu_boot import IMAGE_DIR, RAM_MB
from bench.relocation_figures import (
    MARK,
    MIB,
    USED_MIB,
    Timeline,
    compare,
    parse_marker,
    render,
    summarize,
    user_data,
)
from bench.volume import _probe
from bench.volume_io import HOST_POLL_S
from bench.volume_local import Api, wait_enrolled
from bench.volume_remote import (
    ANCHOR_TIMEOUT_S,
    BANDWIDTH,
    BANDWIDTH_MBIT,
    PROFILE,
    RTT_MS,
    CopyServer,
    _exactly,
)
from edgefed.core.settings import SiteSettings
from edgefed.guest_image import GuestImage, build_guest_image
from edgefed.services.compute import relocation_out
from edgefed.testkit.fleet_process import ProcessFleet, password_token
from edgefed.testkit.process import free_port
from edgefed.testkit.qemu_site import hostnet_dir_for, qemu_config, remove_qemu_site
from edgefed.wan import LinkStats, WanLink

BERLIN, PARIS = "BenchRl-Berlin", "BenchRl-Paris"  # namespaces edgefed-benchrl-<city>
AGENTS = {BERLIN: "bench-rl-berlin", PARIS: "bench-rl-paris"}
POLL_S = HOST_POLL_S
WRITE_DEADLINE_S = 900.0  # boot and 200 MiB of random data written under TCG
MOVE_DEADLINE_S = 900.0
COPIES = 2
MODES = ("cold", "mild")  # one guest each, moved in this order
# Berlin's relocation_chunk_bytes; None: the site's default (what is measured and kept).
CHUNK_BYTES: int | None = None
# How many chunks Berlin keeps in flight (1 before the transfer kept more).
IN_FLIGHT = int(getattr(relocation_out, "IN_FLIGHT", 1))
TOOLS = ("qemu-system-x86_64", "qemu-img", "ip", "nft", "dnsmasq")


def _host_ready() -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        raise RuntimeError(f"missing {', '.join(missing)} (make system-deps)")
    if os.geteuid() != 0:
        raise RuntimeError("the sites' host networks need root")


# --- the fleet -----------------------------------------------------------------------------


@contextlib.contextmanager
def relocation_fleet(root: Path, accel: str) -> Iterator[ProcessFleet]:
    """Berlin and Paris, qemu driver and agent each, behind links of ``PROFILE``;
    everything removed on exit."""
    hostnets = {n: hostnet_dir_for(f"bench-rl-{os.getpid()}-{n[-5:].lower()}") for n in AGENTS}
    fleet = ProcessFleet(
        root=root,
        names=[BERLIN, PARIS],
        rtt_ms=RTT_MS,
        start_timeout=120.0,
        site_config={
            name: qemu_config(hostnets[name], accel=accel, poll_wait=None,
                              extra=f'local_agent_hostname = "{AGENTS[name]}"\n'
                              + (f"relocation_chunk_bytes = {CHUNK_BYTES}\n"
                                 if CHUNK_BYTES else ""))
            for name in AGENTS
        },
    )  # fmt: skip
    with contextlib.ExitStack() as undo:
        for name, hostnet in hostnets.items():
            undo.callback(_remove_site, fleet, name, hostnet)
        undo.callback(fleet.stop)  # the sites, then the WAN and every link
        failed = True
        try:
            fleet.start()
            for link in fleet.wan.links().values():  # the API's links: the same shape
                link.set_profile(PROFILE)
            yield fleet
            failed = False
        finally:
            if failed:
                for site in fleet.sites.values():
                    print(f"--- {site.name}'s log\n{site.log_tail(60)}", file=sys.stderr)


def _remove_site(fleet: ProcessFleet, name: str, hostnet: Path) -> None:
    if name in fleet.sites:
        remove_qemu_site(fleet.sites[name], hostnet)


# --- the anchor: a plain TCP copy over a link of the same profile ---------------------------


def raw_copy(fleet: ProcessFleet, size: int, copies: int = COPIES) -> list[float]:
    """Seconds for ``size`` bytes through a link of ``PROFILE`` to a server in the bench,
    answered by one byte, ``copies`` times on one connection (its handshake first)."""
    port = free_port()
    server = CopyServer(port)
    link = fleet.wan.add_link(server=f"{PARIS}/anchor", target=("127.0.0.1", port),
                              profile=PROFILE)  # fmt: skip
    took: list[float] = []
    try:
        with socket.create_connection(("127.0.0.1", link.port), timeout=ANCHOR_TIMEOUT_S) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(b"d" + struct.pack("!Q", 1))  # the handshake's round trip, paid
            _exactly(sock, 1)
            block = os.urandom(MIB)
            for _ in range(copies):
                started = time.perf_counter()
                sock.sendall(b"u" + struct.pack("!Q", size))
                for start in range(0, size, MIB):
                    sock.sendall(memoryview(block)[: min(MIB, size - start)])
                _exactly(sock, 1)
                took.append(time.perf_counter() - started)
    finally:
        server.close()
    if server.error is not None:
        raise RuntimeError(f"the anchor's server failed: {server.error!r}")
    return took


# --- watching the move ---------------------------------------------------------------------


def _ro(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1.0)


def _qemu_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class Watcher:
    """Polls what the module's text says, into a ``Timeline``."""

    def __init__(self, server_id: str, source: Path, dest: Path, qemu_pid: int) -> None:
        self.server_id = server_id
        self.source_db = _ro(source / "site.db")
        self.dest_db = _ro(dest / "site.db")
        self.qemu_pid = qemu_pid
        self.console = dest / "agent" / "qemu" / "guests" / server_id / "console.log"
        self.timeline = Timeline()
        self.journal: dict[str, Any] = {}

    def close(self) -> None:
        self.source_db.close()
        self.dest_db.close()

    def poll(self, t: float) -> None:
        tl = self.timeline
        with contextlib.suppress(sqlite3.OperationalError):  # a write in progress
            row = self.source_db.execute(
                "SELECT phase, done_bytes, disk_size, error FROM compute_relocations "
                "WHERE server_id = ? AND direction = 'out' ORDER BY created_at DESC LIMIT 1",
                (self.server_id,),
            ).fetchone()
            if row is not None:
                phase, done, size, error = row
                self.journal = {"phase": phase, "done": done, "size": size, "error": error}
                tl.see_phase(phase, t)
                tl.see_bytes(int(done or 0), t)
        if tl.source_stopped is None and not _qemu_alive(self.qemu_pid):
            tl.source_stopped = t
        if tl.dest_active is None:
            with contextlib.suppress(sqlite3.OperationalError):
                found = self.dest_db.execute(
                    "SELECT vm_state, task_state FROM compute_servers WHERE id = ?",
                    (self.server_id,),
                ).fetchone()
                if found is not None and found[0] == "active" and found[1] is None:
                    tl.dest_active = t
        if tl.dest_marker is None and self.console.exists():
            text = self.console.read_bytes()
            if tl.dest_first_line is None and b"\n" in text:
                tl.dest_first_line = t
            if f"{MARK} found".encode() in text:
                tl.dest_marker = t

    @property
    def finished(self) -> bool:
        return self.journal.get("phase") in ("done", "failed", "aborted") and (
            self.timeline.dest_marker is not None or self.journal.get("phase") != "done"
        )


async def _watch(watcher: Watcher, started: float, deadline: float) -> None:
    while not watcher.finished:
        now = time.monotonic() - started
        if now > deadline:
            raise TimeoutError(f"the move did not finish within {deadline:.0f} s: "
                               f"{watcher.journal}")  # fmt: skip
        watcher.poll(now)
        await asyncio.sleep(POLL_S)
    watcher.poll(time.monotonic() - started)


# --- the run -------------------------------------------------------------------------------


def _bytes(link: WanLink) -> LinkStats:
    return link.stats


async def _image(api: Api, image: GuestImage) -> str:
    body = {"name": "tiny", "disk_format": "qcow2", "container_format": "bare"}
    image_id = str((await api.call("POST", "/image/v2/images", json=body)).json()["id"])
    await api.call("PUT", f"/image/v2/images/{image_id}/file", content=image.disk.read_bytes(),
                   headers={"Content-Type": "application/octet-stream"})  # fmt: skip
    return image_id


async def _boot_and_fill(api: Api, guests: Path, image_id: str, flavor_id: str, name: str) -> str:
    server = {"server": {"name": name, "imageRef": image_id, "flavorRef": flavor_id,
                         "networks": "none",
                         "user_data": base64.b64encode(user_data()).decode()}}  # fmt: skip
    r = await api.call("POST", "/compute/v2.1/servers", compute=True, json=server)
    server_id = str(r.json()["server"]["id"])
    log = guests / server_id / "console.log"
    started = time.monotonic()
    checked = 0.0
    while time.monotonic() - started < WRITE_DEADLINE_S:
        if log.exists() and f"{MARK} wrote".encode() in log.read_bytes():
            return server_id
        if time.monotonic() - checked > 5.0:
            checked = time.monotonic()
            shown = (await api.call("GET", f"/compute/v2.1/servers/{server_id}")).json()
            if shown["server"]["status"] == "ERROR":
                raise RuntimeError(f"the guest failed: {shown['server'].get('fault')}")
        await asyncio.sleep(0.5)
    raise TimeoutError(f"the guest did not write its data within {WRITE_DEADLINE_S:.0f} s")


async def _move(
    fleet: ProcessFleet, api: Api, papi: Api, server_id: str, mode: str
) -> tuple[Watcher, dict[str, int], dict[str, str]]:
    """Move the guest in ``mode``, watched until its user data read the disk back at
    Paris; then delete it there. The watcher, the link's bytes, what the guest found."""
    berlin, paris = fleet[BERLIN], fleet[PARIS]
    guests = berlin.data_dir / "agent" / "qemu" / "guests"
    wrote = parse_marker((guests / server_id / "console.log").read_text(errors="replace"))
    qemu_pid = int((guests / server_id / "qemu.pid").read_text().split()[0])
    link = fleet.wan.link(server=PARIS)
    watcher = Watcher(server_id, berlin.data_dir, paris.data_dir, qemu_pid)
    try:
        before = _bytes(link)
        started = time.monotonic()
        body = {"os-edge:relocate": {"site": PARIS, "mode": mode}}
        await api.call("POST", f"/compute/v2.1/servers/{server_id}/action", json=body)
        watcher.timeline.answered = round(time.monotonic() - started, 3)
        await _watch(watcher, started, MOVE_DEADLINE_S)
        after = _bytes(link)
    finally:
        watcher.close()
    if watcher.journal.get("phase") != "done":
        raise RuntimeError(f"the {mode} move did not complete: {watcher.journal}")
    moved = parse_marker(watcher.console.read_text(errors="replace"))
    if moved.get("sha") != wrote.get("sha") or moved.get("read") != wrote.get("sha"):
        raise RuntimeError(f"the moved disk does not hold what was written: wrote {wrote}, "
                           f"found {moved}")  # fmt: skip
    await papi.call("DELETE", f"/compute/v2.1/servers/{server_id}")  # no guest meanwhile
    wire = {"up": after.bytes_up - before.bytes_up, "down": after.bytes_down - before.bytes_down}
    return watcher, wire, moved


async def measure(fleet: ProcessFleet) -> dict[str, Any]:
    berlin, paris = fleet[BERLIN], fleet[PARIS]
    tokens = [await asyncio.to_thread(password_token, s.url, s.password) for s in (berlin, paris)]
    async with (
        httpx.AsyncClient(base_url=berlin.url, timeout=300) as at_berlin,
        httpx.AsyncClient(base_url=paris.url, timeout=300) as at_paris,
    ):
        api, papi = Api(at_berlin, tokens[0]), Api(at_paris, tokens[1])
        await asyncio.gather(wait_enrolled(api, AGENTS[BERLIN]), wait_enrolled(papi, AGENTS[PARIS]))
        flavor = {"flavor": {"name": "bench.rel", "vcpus": 1, "ram": RAM_MB, "disk": 1}}
        flavor_id = str((await api.call("POST", "/compute/v2.1/flavors", json=flavor)).json()
                        ["flavor"]["id"])  # fmt: skip
        await papi.call("POST", "/compute/v2.1/flavors", json=flavor)
        image_id = await _image(api, build_guest_image(IMAGE_DIR))
        guests = berlin.data_dir / "agent" / "qemu" / "guests"
        print(f"bench relocation: booting two guests at {BERLIN}; each writes {USED_MIB} MiB "
              "of random data onto its disk…", flush=True)  # fmt: skip
        began = time.monotonic()
        ids = await asyncio.gather(
            *(_boot_and_fill(api, guests, image_id, flavor_id, f"relbench-{mode}")
              for mode in MODES)
        )  # fmt: skip
        filled_s = time.monotonic() - began
        wrote = parse_marker((guests / ids[0] / "console.log").read_text(errors="replace"))
        moves: dict[str, tuple[Watcher, dict[str, int], dict[str, str]]] = {}
        for mode, server_id in zip(MODES, ids, strict=True):
            print(f"bench relocation: written ({filled_s:.0f} s after the POST); moving one "
                  f"{mode} to {PARIS}…", flush=True)  # fmt: skip
            moves[mode] = await _move(fleet, api, papi, server_id, mode)
        size = int(moves["cold"][0].journal["size"])
        print(f"bench relocation: moved; the anchor: {COPIES} TCP copies of {size / MIB:.1f} "
              "MiB over a link of the same profile…", flush=True)  # fmt: skip
        await asyncio.sleep(2.0)  # the guests' QEMU gone, as during the transfer
        copies = await asyncio.to_thread(raw_copy, fleet, size)
    chunk = CHUNK_BYTES or next(f.default for f in dataclasses.fields(SiteSettings)
                                if f.name == "relocation_chunk_bytes")  # fmt: skip
    assert isinstance(chunk, int)
    results: dict[str, Any] = {}
    for mode, (watcher, wire, found) in moves.items():
        disk = int(watcher.journal["size"])  # the disk; a mild move's changes after it
        results[mode] = summarize(
            watcher.timeline, disk_size=disk, bytes_done=int(watcher.journal["done"]),
            wire=wire, copies_s=copies, copy_bytes=size, bandwidth=BANDWIDTH, rtt_ms=RTT_MS,
            chunk_bytes=chunk, in_flight=IN_FLIGHT, mode=mode,
        ) | {"dest": PARIS, "found": found, "progress": watcher.timeline.progress,
             "delta_bytes": int(watcher.journal["done"]) - disk}  # fmt: skip
    return {
        "cold": results["cold"],
        "mild": results["mild"],
        "compare": compare(results["cold"], results["mild"]),
        "source": BERLIN,
        "dest": PARIS,
        "used_mib": USED_MIB,
        "fill_s": round(filled_s, 1),
        "written": wrote,
        "bandwidth_mbit": BANDWIDTH_MBIT,
    }


def run(settings: dict[str, Any]) -> dict[str, Any]:
    _host_ready()
    scratch = Path(tempfile.mkdtemp(prefix="edgefed-bench-relocation-"))
    try:
        accel, _ = asyncio.run(_probe(scratch / "probe"))
        print(f"bench relocation: starting {BERLIN} and {PARIS} (qemu driver, {accel}) behind "
              f"links of {RTT_MS:.0f} ms RTT, {BANDWIDTH_MBIT} Mbit/s…", flush=True)  # fmt: skip
        with relocation_fleet(scratch / "fleet", accel) as fleet:
            results = asyncio.run(measure(fleet))
        return results | {"accel": accel}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


__all__ = ["render", "run"]
