"""``python -m bench volume``, mode **remote**: a volume of another site attached to a
guest over NBD through the WAN emulator, against a plain TCP copy over the same link.

Two real sites in a fleet (``ProcessFleet``): Berlin runs the guest (the qemu driver and
its local agent), Paris holds an empty 1 GiB volume. Every byte between them crosses the
WAN emulator at ``RTT_MS`` round trip and ``BANDWIDTH_MBIT`` each way: the API calls
(each site's public URL is a link) and the NBD data path too. Paris advertises its
exports at ``EXPORT_HOST`` (127.0.0.2) on a fixed range of ports
(``volume_export_ports``), and one link per port of the range listens on
``127.0.0.2:<port>`` and forwards to the export's ``127.0.0.1:<port>``; Berlin's QEMU
connects where Paris says, so through the link. Then ``--starts`` rounds, each:

1. **attach**: ``POST …/os-volume_attachments`` at Berlin with ``X-Scope: {volume:
   Paris}``, timed as ``local`` does to the answer, the guest kernel's probe and the
   guest's ``VOLBENCH seen``; where the time goes from Berlin's ``host_commands`` row
   (queued: Berlin found the volume at Paris and Paris made the attachment and started
   its export; taken by the agent; answered: QMP ``blockdev-add`` of the NBD client, its
   TCP, TLS-PSK and NBD handshakes over the link, and ``device_add``) and from Paris's
   export directory (its key file written: the export begun; its daemon's pidfile: up).
2. **the guest's suite** (``REMOTE_SUITE``): ``volume_io.SUITE`` (``O_DIRECT``, one
   operation at a time) with fewer random operations, each costs a round trip; the
   sequential tests again in 8 MiB blocks; then the sequential patterns a guest's
   applications make, with requests in flight: ``O_DIRECT`` 1 MiB with 4 and 8 in
   flight (Linux AIO, as a database or ``fio --ioengine=libaio`` does), and through the
   guest's page cache (its caches dropped first): 1 MiB writes and one fsync (``dd``,
   a checkpoint: the kernel's write-back sends them), 128 KiB reads (``cat``, ``cp``:
   the kernel's read-ahead fetches ahead of them) with the disk's default read-ahead
   and with ``READ_AHEAD_KB``. The bytes the link carried from the attach to the
   suite's end (NBD and TLS framing included), and the guest's queue settings.
3. **detach** (``DELETE`` at Berlin, same scope): Paris stops the export.
4. **anchor**, on the very link the round's export used (its port free again): a TCP
   server in the bench on ``127.0.0.1:<port>``, a client through ``127.0.0.2:<port>``,
   one connection (its handshake paid first): ``EXCHANGES`` request-answer exchanges of
   4 KiB each way (the anchor of the 4 KiB tests: one round trip and 4 KiB of link
   time), then 64 MiB (``REGION``) Berlin→Paris answered by one byte (the anchor of the
   sequential writes) and 64 MiB Paris→Berlin after a one-byte request (the reads).
   Each copy counts one round trip, as the guest's sequential test counts its last
   operation's answer or its fsync.
5. **the relay**: the same volume attached to a second guest, one with a NIC on a
   Berlin network, whose QEMU runs in Berlin's network namespace and reaches the export
   through the agent's unix-socket relay (``drivers/qemu/relay.py``); a shorter suite
   (``RELAY_SUITE``), compared with the first guest's same tests of the same round, and
   the agent's CPU time while each guest's suite ran.

Goal (issue #15): **sequential throughput ≥ 80 % of the link's copy**, write and read,
judged on ``GOAL_TESTS``: ``O_DIRECT`` 1 MiB with 8 requests in flight. A copy keeps a
TCP window's worth of bytes in flight; the guest's sequential I/O is compared with it
when it too keeps more than the link's bandwidth-delay product (0.6 MiB here) in
flight, set by the test rather than by the guest's tunables (its dirty-page thresholds
and read-ahead), and within what QEMU's NBD client keeps in flight (16 requests). The
one-at-a-time rows are kept: each 1 MiB waits a round trip before its data moves, so at
50 ms and 100 Mbit/s the link idles ~37 % of the time; they are the latency figures.

Everything is removed at the end, also on error: the server, both sites, Berlin's agent,
guest, namespace and /run directory (``testkit.qemu_site.remove_qemu_site``), Paris's
export daemons (``NbdExports.close_all`` on its exports directory), the WAN's links and
thread, the anchor's server.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import socket
import statistics
import struct
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench.qemu_boot import RAM_MB
from bench.volume_io import (
    GUEST_FLAGS,
    MIB,
    REGION,
    SUITE,
    IoTest,
    attach_summary,
    guest_script,
    io_summary,
    parse_queue,
    parse_round,
)
from bench.volume_local import (
    SETTLE_S,
    SUITE_DEADLINE_S,
    Api,
    attach,
    boot,
    command_phases,
    cpu_seconds,
    detach,
    wait_enrolled,
    watch,
)
from edgefed.guest_image import GuestImage
from edgefed.services.volume.exports import NbdExports
from edgefed.testkit.fleet_process import ProcessFleet, password_token
from edgefed.testkit.qemu_site import hostnet_dir_for, qemu_config, remove_qemu_site
from edgefed.wan import LinkProfile, LinkStats, WanLink

BERLIN, PARIS = "BenchRv-Berlin", "BenchRv-Paris"  # Berlin's namespace: edgefed-benchrv-berlin
AGENT_HOST = "bench-vol-remote"
RTT_MS = 50.0
BANDWIDTH_MBIT = 100
BANDWIDTH = BANDWIDTH_MBIT * 1_000_000 / 8  # bytes/s each way, the link's LinkProfile
PROFILE = LinkProfile(rtt_ms=RTT_MS, bandwidth=BANDWIDTH)
EXPORT_HOST = "127.0.0.2"  # Paris advertises its exports here; the links listen here
EXPORT_PORT_COUNT = 4
EXPORT_PORT_LOW, EXPORT_PORT_HIGH = 20100, 32000  # below the ephemeral range
VOLUME_GB = 1
SEQ_GOAL = 0.80
EXCHANGES = 40  # 4 KiB request-answer exchanges each way, the 4 KiB tests' anchor
SMALL = 4096
BIG_BS = 8 * MIB
ANCHOR_TIMEOUT_S = 120.0

# A buffered read's size: coreutils' cat and cp read 128 KiB at a time (io_blksize;
# Debian 12's coreutils 9.1, as strace shows), so the kernel's read-ahead, not the
# reader's size, sets what is in flight (a read larger than read_ahead_kb is fetched
# whole, up to max_sectors_kb).
COPY_READ_BS = 128 * 1024
# tuned's throughput-performance profile (RHEL's default for servers, and the base of
# its virtual-guest profile): "[disk] readahead=>4096", KiB; the kernel's default is
# 128 KiB unless the device reports an optimal I/O size (this one does not: the guest
# finds 128, its queue line shows it).
READ_AHEAD_KB = 4096

# One round trip per 4 KiB operation (~55 ms here): fewer of them than the local suite
# (2,000) keeps a round near a minute; 200 give the p50 and p99 as well.
_RANDOM_OPS = {"rand-write": 200, "rand-read": 200, "sync-write": 50}
REMOTE_SUITE: tuple[IoTest, ...] = (
    *(dataclasses.replace(t, ops=_RANDOM_OPS.get(t.name, t.ops)) for t in SUITE),
    IoTest("seq-write-8m", "seqwrite", BIG_BS, 0, "fsync", "sequential write, 8 MiB, fsync"),
    IoTest("seq-read-8m", "seqread", BIG_BS, 0, "", "sequential read, 8 MiB blocks"),
    IoTest("seq-write-qd4", "seqwrite", MIB, 0, "fsync", "seq. write, 1 MiB, 4 in flight", qd=4),
    IoTest("seq-read-qd4", "seqread", MIB, 0, "", "seq. read, 1 MiB, 4 in flight", qd=4),
    IoTest("seq-write-qd8", "seqwrite", MIB, 0, "fsync", "seq. write, 1 MiB, 8 in flight", qd=8),
    IoTest("seq-read-qd8", "seqread", MIB, 0, "", "seq. read, 1 MiB, 8 in flight", qd=8),
    IoTest("buf-write", "seqwrite", MIB, 0, "fsync", "buffered write, 1 MiB, fsync",
           buffered=True),
    IoTest("buf-read", "seqread", COPY_READ_BS, 0, "", "buffered read, 128 KiB, default RA",
           buffered=True),
    IoTest("buf-read-ra", "seqread", COPY_READ_BS, 0, "",
           f"buffered read, 128 KiB, RA {READ_AHEAD_KB} KiB", buffered=True,
           read_ahead_kb=READ_AHEAD_KB),
)  # fmt: skip
# Which of the link's measurements is each test's anchor: a copy for the sequential
# tests, an exchange for the 4 KiB ones.
ANCHOR_OF = {
    t.name: ("exchange" if t.bs <= SMALL else "copy")
    + ("-up" if t.op.endswith("write") else "-down")
    for t in REMOTE_SUITE
}
GOAL_TESTS = ("seq-write-qd8", "seq-read-qd8")
# The relay's guest (a NIC: its NBD through the agent's relay): the same volume, fewer
# tests, each compared with the first guest's of the same round.
RELAY_TESTS = ("seq-write", "seq-read", "rand-read", "seq-write-qd8", "seq-read-qd8")
RELAY_SUITE = tuple(t for t in REMOTE_SUITE if t.name in RELAY_TESTS)
RELAY_CIDR = "10.79.0.0/24"
Rounds = list[dict[str, dict[str, int]]]  # per round, per test: a volio result


# --- the anchor: a plain TCP copy over the same link -------------------------------------


def _recv_exactly(sock: socket.socket, size: int, buf: bytearray) -> None:
    view, left = memoryview(buf), size
    while left:
        n = sock.recv_into(view[: min(left, len(buf))])
        if not n:
            raise ConnectionError("the anchor's peer closed early")
        left -= n


class CopyServer:
    """Paris's end of the anchor, in a thread: on one connection, ``u`` + 8-byte length
    (read that many bytes, answer one), ``d`` + 8-byte length (send that many)."""

    def __init__(self, port: int) -> None:
        deadline = time.monotonic() + 10.0
        while True:  # the export's daemon may still be letting the port go
            try:
                self.listener = socket.create_server(("127.0.0.1", port))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.listener.settimeout(ANCHOR_TIMEOUT_S)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, name="bench-anchor", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        buf = bytearray(MIB)
        payload = os.urandom(MIB)
        try:
            conn, _ = self.listener.accept()
            with conn:
                conn.settimeout(ANCHOR_TIMEOUT_S)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                while head := conn.recv(1):
                    size = struct.unpack("!Q", _exactly(conn, 8))[0]
                    if head == b"u":
                        _recv_exactly(conn, size, buf)
                        conn.sendall(b"k")
                    else:
                        for start in range(0, size, MIB):
                            conn.sendall(memoryview(payload)[: min(MIB, size - start)])
        except BaseException as exc:  # shown by the client's side
            self.error = exc

    def close(self) -> None:
        self.listener.close()
        self.thread.join(ANCHOR_TIMEOUT_S)


def _exactly(sock: socket.socket, size: int) -> bytes:
    buf = bytearray(size)
    _recv_exactly(sock, size, buf)
    return bytes(buf)


def _result(bs: int, took_ns: list[int]) -> dict[str, int]:
    """The anchor as a ``volio`` line: one operation per exchange (a copy: per MiB, each
    the copy's mean time per MiB)."""
    ordered = sorted(took_ns)

    def at(per_mille: int) -> int:
        return ordered[max(0, (len(ordered) * per_mille + 999) // 1000 - 1)]

    return {
        "bs": bs,
        "ops": len(ordered),
        "bytes": bs * len(ordered),
        "total_ns": sum(ordered),
        "sync_ns": 0,
        "min_ns": ordered[0],
        "p50_ns": at(500),
        "p90_ns": at(900),
        "p99_ns": at(990),
        "max_ns": ordered[-1],
        "mean_ns": sum(ordered) // len(ordered),
    }


def link_copy(port: int, size: int = REGION, exchanges: int = EXCHANGES) -> dict[str, Any]:
    """The anchor through the link on ``EXPORT_HOST:port`` (see the module's text)."""
    server = CopyServer(port)
    out: dict[str, Any] = {}
    try:
        with socket.create_connection((EXPORT_HOST, port), timeout=ANCHOR_TIMEOUT_S) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buf = bytearray(MIB)
            block = os.urandom(MIB)

            def down(n: int) -> int:
                started = time.perf_counter_ns()
                sock.sendall(b"d" + struct.pack("!Q", n))
                _recv_exactly(sock, n, buf)
                return time.perf_counter_ns() - started

            def up(n: int) -> int:
                started = time.perf_counter_ns()
                sock.sendall(b"u" + struct.pack("!Q", n))
                for start in range(0, n, MIB):
                    sock.sendall(memoryview(block)[: min(MIB, n - start)])
                _exactly(sock, 1)
                return time.perf_counter_ns() - started

            down(1)  # the link charges the TCP handshake to a connection's first bytes
            out["exchange-up"] = _result(SMALL, [up(SMALL) for _ in range(exchanges)])
            out["exchange-down"] = _result(SMALL, [down(SMALL) for _ in range(exchanges)])
            took = up(size)
            out["copy-up"] = _result(MIB, [took // (size // MIB)] * (size // MIB))
            took = down(size)
            out["copy-down"] = _result(MIB, [took // (size // MIB)] * (size // MIB))
    finally:
        server.close()
    if server.error is not None:
        raise RuntimeError(f"the anchor's server failed: {server.error!r}")
    return out


# --- the fleet -----------------------------------------------------------------------------


def _free_on_both(port: int) -> bool:
    for host in ("127.0.0.1", EXPORT_HOST):
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError:
                return False
    return True


def export_ports(count: int = EXPORT_PORT_COUNT) -> range:
    """``count`` consecutive ports free on 127.0.0.1 (the exports) and on ``EXPORT_HOST``
    (their links), below the kernel's ephemeral range."""
    for first in range(EXPORT_PORT_LOW, EXPORT_PORT_HIGH, count):
        ports = range(first, first + count)
        if all(_free_on_both(p) for p in ports):
            return ports
    raise RuntimeError("no free range of ports for Paris's exports")


@contextlib.contextmanager
def remote_fleet(scratch: Path, accel: str) -> Iterator[tuple[ProcessFleet, dict[int, WanLink]]]:
    """Berlin (qemu) and Paris behind links of ``PROFILE``, one more per export port;
    everything removed on exit."""
    hostnet = hostnet_dir_for(f"bench-rv-{os.getpid()}")
    ports = export_ports()
    fleet = ProcessFleet(
        root=scratch / "fleet",
        names=[BERLIN, PARIS],
        rtt_ms=RTT_MS,
        site_config={
            BERLIN: qemu_config(
                hostnet, accel=accel, poll_wait=None,
                extra=f'local_agent_hostname = "{AGENT_HOST}"\n',
            ),
            PARIS: f'volume_export_host = "{EXPORT_HOST}"\n'
                   f'volume_export_ports = "{ports.start}-{ports.stop - 1}"\n',
        },
    )  # fmt: skip
    with contextlib.ExitStack() as undo:
        undo.callback(_close_exports, fleet)  # last: the daemons outlive their site
        undo.callback(_remove_berlin, fleet, hostnet)
        undo.callback(fleet.stop)  # the sites, then the WAN and every link
        failed = True
        try:
            fleet.start()
            for link in fleet.wan.links().values():  # the API's links: the same shape
                link.set_profile(PROFILE)
            links = {
                port: fleet.wan.add_link(
                    server=f"{PARIS}/nbd:{port}",
                    target=("127.0.0.1", port),
                    profile=PROFILE,
                    listen_host=EXPORT_HOST,
                    listen_port=port,
                )
                for port in ports
            }
            yield fleet, links
            failed = False
        finally:
            if failed:
                for site in fleet.sites.values():
                    print(f"--- {site.name}'s log\n{site.log_tail(60)}", file=sys.stderr)


def _remove_berlin(fleet: ProcessFleet, hostnet: Path) -> None:
    if BERLIN in fleet.sites:
        remove_qemu_site(fleet.sites[BERLIN], hostnet)


def _close_exports(fleet: ProcessFleet) -> None:
    if PARIS in fleet.sites:
        exports = fleet.sites[PARIS].data_dir / "volumes" / "exports"
        asyncio.run(NbdExports(exports, bind_host="", advertised_host="").close_all())


# --- the rounds ----------------------------------------------------------------------------


def export_phases(paris_dir: Path, wall: float) -> dict[str, float]:
    """When Paris began the attachment's export (its key written) and when its daemon was
    up (its pidfile), seconds from the attach's request (the same host clock)."""
    [export] = (paris_dir / "volumes" / "exports").iterdir()
    return {
        "attach_export_begun": (export / "keys.psk").stat().st_mtime - wall,
        "attach_export_up": (export / "qsd.pid").stat().st_mtime - wall,
    }


def _bytes(links: dict[int, WanLink]) -> dict[int, LinkStats]:
    return {port: link.stats for port, link in links.items()}


@dataclasses.dataclass
class Guest:
    """One of Berlin's guests and what its rounds gave."""

    server_id: str
    log: Path
    suite: tuple[IoTest, ...]
    relayed: bool  # its NBD through the agent's relay (a NIC: QEMU in the namespace)
    rounds: Rounds = dataclasses.field(default_factory=list)
    cycles: list[dict[str, float]] = dataclasses.field(default_factory=list)
    wire: list[dict[str, int]] = dataclasses.field(default_factory=list)
    agent: list[dict[str, float]] = dataclasses.field(default_factory=list)
    queue: list[dict[str, str]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Berlin:
    """What a round needs of the fleet: the API (with the volume's scope), the links,
    where Berlin keeps its guests and agent, and where Paris keeps its exports."""

    api: Api
    links: dict[int, WanLink]
    guests: Path
    agent_pid: int
    paris_dir: Path
    volume_id: str
    scope: dict[str, str]


async def guest_round(at: Berlin, guest: Guest, n: int) -> int:
    """Round ``n`` of one guest: attach, its suite, detach; the port its export used."""
    log = guest.log
    offset = log.stat().st_size
    before, cpu_before, began = _bytes(at.links), cpu_seconds(at.agent_pid), time.monotonic()
    cycle = await attach(at.api, guest.server_id, at.volume_id, log, n, headers=at.scope)
    cycle.update(export_phases(at.paris_dir, cycle["attach_wall"]))
    sockets = list((at.guests / guest.server_id).glob("nbd-*.sock"))
    if bool(sockets) != guest.relayed:
        raise RuntimeError(f"guest {guest.server_id}: relay sockets {sockets}, expected "
                           f"{'one' if guest.relayed else 'none'}")  # fmt: skip
    done = {"done": re.compile(rf"VOLBENCH done round={n}\b".encode())}
    await watch(log, offset, done, time.monotonic(), SUITE_DEADLINE_S)
    span, cpu = time.monotonic() - began, cpu_seconds(at.agent_pid) - cpu_before
    after = _bytes(at.links)
    console = log.read_text(errors="replace")
    guest.rounds.append(parse_round(console, n))
    guest.queue.append(parse_queue(console, n))
    port = max(at.links, key=lambda p: after[p].bytes_down - before[p].bytes_down)
    up = after[port].bytes_up - before[port].bytes_up
    down = after[port].bytes_down - before[port].bytes_down
    guest.wire.append({"port": port, "up": up, "down": down})
    guest.agent.append({"cpu_s": cpu, "span_s": span})
    await asyncio.sleep(SETTLE_S)
    cycle.update(await detach(at.api, guest.server_id, at.volume_id, log, n, headers=at.scope))
    guest.cycles.append(cycle)
    return port


async def relay_network(api: Api) -> str:
    """A network with a DHCP subnet at Berlin, for the relay's guest's port."""
    r = await api.call("POST", "/network/v2.0/networks", json={"network": {"name": "volbench"}})
    network_id = str(r.json()["network"]["id"])
    subnet = {"network_id": network_id, "cidr": RELAY_CIDR, "ip_version": 4}
    await api.call("POST", "/network/v2.0/subnets", json={"subnet": subnet})
    return network_id


async def measure(
    settings: dict[str, Any],
    image: GuestImage,
    volio: Path,
    fleet: ProcessFleet,
    links: dict[int, WanLink],
) -> dict[str, Any]:
    rounds = int(settings.get("starts", 3))
    berlin, paris = fleet[BERLIN], fleet[PARIS]
    scope = {"X-Scope": f"{{volume: {PARIS}}}"}
    guests = berlin.data_dir / "agent" / "qemu" / "guests"
    berlin_token = await asyncio.to_thread(password_token, berlin.url, berlin.password)
    paris_token = await asyncio.to_thread(password_token, paris.url, paris.password)
    async with (
        httpx.AsyncClient(base_url=berlin.url, timeout=300) as at_berlin,
        httpx.AsyncClient(base_url=paris.url, timeout=300) as at_paris,
    ):
        api, papi = Api(at_berlin, berlin_token), Api(at_paris, paris_token)
        await wait_enrolled(api, AGENT_HOST)
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
        volume = {"volume": {"size": VOLUME_GB, "name": "bench-remote-vol"}}
        volume_id = str((await papi.call("POST", "/volume/v3/volumes", json=volume)).json()
                        ["volume"]["id"])  # fmt: skip
        network_id = await relay_network(api)
        print("bench volume: remote: booting two guests at Berlin, one with a NIC…", flush=True)
        (plain_id, plain_log), (nic_id, nic_log) = await asyncio.gather(
            boot(api, guests, image_id, flavor_id,
                 guest_script(volume_id[:20], volio.read_bytes(), REMOTE_SUITE)),
            boot(api, guests, image_id, flavor_id,
                 guest_script(volume_id[:20], volio.read_bytes(), RELAY_SUITE),
                 name="volbench-nic", networks=[{"uuid": network_id}]),
        )  # fmt: skip
        agent_pid = int((berlin.data_dir / "agent" / "agent.pid").read_text().split()[0])
        at = Berlin(api, links, guests, agent_pid, paris.data_dir, volume_id, scope)
        plain = Guest(plain_id, plain_log, REMOTE_SUITE, relayed=False)
        nic = Guest(nic_id, nic_log, RELAY_SUITE, relayed=True)
        anchors: Rounds = []
        for n in range(1, rounds + 1):
            print(f"bench volume: remote: round {n}/{rounds}: attach, the guest's I/O…",
                  flush=True)  # fmt: skip
            port = await guest_round(at, plain, n)
            print(f"bench volume: remote: round {n}/{rounds}: the anchor, a TCP copy over "
                  f"the link of port {port}…", flush=True)  # fmt: skip
            link = await asyncio.to_thread(link_copy, port)
            anchors.append({t.name: link[ANCHOR_OF[t.name]] for t in REMOTE_SUITE})
            await asyncio.sleep(SETTLE_S)
            print(f"bench volume: remote: round {n}/{rounds}: the guest with a NIC (the "
                  "agent's relay)…", flush=True)  # fmt: skip
            await guest_round(at, nic, n)
            await asyncio.sleep(SETTLE_S)
        for guest in (plain, nic):
            command_phases(berlin.data_dir / "site.db", guest.server_id, guest.cycles)
            await api.call("DELETE", f"/compute/v2.1/servers/{guest.server_id}")
    return summarize(anchors, plain, nic)


def _timings(cycles: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in c.items() if not k.endswith("_wall")} for c in cycles]


def _ratios(io: dict[str, Any], names: tuple[str, ...]) -> dict[str, float]:
    return {name: io[name]["throughput_ratio"] for name in names}


def _verdict(ratios: dict[str, float]) -> str:
    return "PASS" if min(ratios.values()) >= SEQ_GOAL else "MISS"


def relay_summary(plain: Guest, nic: Guest, anchors: Rounds) -> dict[str, Any]:
    """The relay's guest against the plain guest's same tests of the same round
    (ratio = relayed ÷ direct, added = relayed − direct) and against the link; the
    agent's CPU while each suite ran, and per MiB the relay carried (beyond the agent's
    CPU per second while the plain guest's suite ran: its polls and the attach)."""
    idle = [a["cpu_s"] / a["span_s"] for a in plain.agent]
    per_mib = [
        (a["cpu_s"] - rate * a["span_s"]) / ((w["up"] + w["down"]) / MIB) * 1e6
        for a, w, rate in zip(nic.agent, nic.wire, idle, strict=True)
    ]
    return {
        "against_direct": io_summary(plain.rounds, nic.rounds, RELAY_SUITE),
        "against_link": io_summary(anchors, nic.rounds, RELAY_SUITE),
        "attach": attach_summary(_timings(nic.cycles), float("inf")) | {"verdict": "—"},
        "agent_cpu": {
            "direct_cpu_share": round(statistics.median(idle), 4),
            "relayed_cpu_share": round(
                statistics.median(a["cpu_s"] / a["span_s"] for a in nic.agent), 4
            ),
            "relayed": [{k: round(v, 3) for k, v in a.items()} for a in nic.agent],
            "relay_cpu_us_per_mib": round(statistics.median(per_mib), 1),
        },
        "wire": nic.wire,
    }


def summarize(anchors: Rounds, plain: Guest, nic: Guest) -> dict[str, Any]:
    """The figures of the rounds: medians, ratios against the link, the verdict."""
    timings = _timings(plain.cycles)
    io = io_summary(anchors, plain.rounds, REMOTE_SUITE)
    ratios = _ratios(io, GOAL_TESTS)
    one_at_a_time = _ratios(io, ("seq-write", "seq-read"))
    payload = sum(int(plain.rounds[0][t.name]["bytes"]) for t in REMOTE_SUITE)
    return {
        "attach": attach_summary(timings, float("inf")) | {"verdict": "—"},
        "cycles": timings,
        "io": io,
        "link": {
            "rtt_ms": RTT_MS,
            "bandwidth_mbit": BANDWIDTH_MBIT,
            "cap_mib_s": round(BANDWIDTH / MIB, 2),
            "copy_up_mib_s": round(_median_rate(anchors, "seq-write"), 2),
            "copy_down_mib_s": round(_median_rate(anchors, "seq-read"), 2),
            "exchange_up_p50_ms": round(_median_p50(anchors, "rand-write") / 1e6, 2),
            "exchange_down_p50_ms": round(_median_p50(anchors, "rand-read") / 1e6, 2),
        },
        "wire": {
            "rounds": plain.wire,
            "payload_bytes": payload,
            "overhead": round(
                statistics.median((w["up"] + w["down"]) / payload for w in plain.wire), 4
            ),
        },
        "goal": {
            "seq_fraction_of_link_at_least": SEQ_GOAL,
            "tests": list(GOAL_TESTS),
            "ratios": ratios,
            "verdict": _verdict(ratios),
            "one_at_a_time": {"ratios": one_at_a_time, "verdict": _verdict(one_at_a_time)},
            "buffered": _ratios(io, ("buf-write", "buf-read", "buf-read-ra")),
        },
        "queue": plain.queue[0] if plain.queue else {},
        "relay": relay_summary(plain, nic, anchors),
        "rounds": {"anchor": anchors, "guest": plain.rounds, "relayed": nic.rounds},
        "suite": {t.name: {"bs": t.bs, "ops": t.ops, "qd": t.qd, "buffered": t.buffered,
                           "read_ahead_kb": t.read_ahead_kb} for t in REMOTE_SUITE},
        "read_ahead_kb": READ_AHEAD_KB,
        "volume_gb": VOLUME_GB,
        "region_mib": REGION // MIB,
        "guest_flags": GUEST_FLAGS,
        "rounds_count": len(plain.rounds),
    }  # fmt: skip


def _median_rate(anchors: Rounds, test: str) -> float:
    return statistics.median(a[test]["bytes"] / MIB / (a[test]["total_ns"] / 1e9) for a in anchors)


def _median_p50(anchors: Rounds, test: str) -> float:
    return statistics.median(a[test]["p50_ns"] for a in anchors)


def run(
    settings: dict[str, Any], image: GuestImage, volio: Path, scratch: Path, accel: str
) -> dict[str, Any]:
    print(f"bench volume: remote: starting {BERLIN} (qemu driver) and {PARIS} behind links "
          f"of {RTT_MS:.0f} ms RTT, {BANDWIDTH_MBIT} Mbit/s…", flush=True)  # fmt: skip
    with remote_fleet(scratch, accel) as (fleet, links):
        return asyncio.run(measure(settings, image, volio, fleet, links))


# --- the table -----------------------------------------------------------------------------


def _throughput(side: dict[str, float], small: bool) -> str:
    return f"{side['iops']:,.1f} op/s" if small else f"{side['mib_s']:,.2f} MiB/s"


def _latency(us: float) -> str:
    return f"{us / 1000:,.1f} ms"


def _row(test: IoTest, row: dict[str, Any], ops: int) -> str:
    small = test.bs <= SMALL
    g, an = row["guest"], row["anchor"]
    flight = "cache" if test.buffered else str(test.qd)
    added = "" if test.buffered or test.qd > 1 else f"{row['added_p50_us'] / 1000:>+8,.1f} ms"
    return (
        f"  {test.label:40}{flight:>7}{ops:>6}{_throughput(g, small):>15}"
        f"{_throughput(an, small):>15}{row['throughput_ratio']:>8.3f}"
        f"{_latency(g['p50_us']):>12}{_latency(an['p50_us']):>10}{added:>11}"
    )


def render(remote: dict[str, Any]) -> str:
    a, link, wire, goal = remote["attach"], remote["link"], remote["wire"], remote["goal"]
    n = remote["rounds_count"]

    def ms(key: str, of: dict[str, Any] = a) -> str:
        f = of.get(key)
        return "n/a" if f is None else f"{f['median_s'] * 1000:,.0f} ms"

    seq = remote["io"]["seq-read"]
    lines = [
        f"remote: a {remote['volume_gb']} GiB volume of {PARIS} attached to a guest at "
        f"{BERLIN} over NBD (qemu-storage-daemon, TLS-PSK), through the WAN emulator at "
        f"{link['rtt_ms']:.0f} ms RTT and {link['bandwidth_mbit']} Mbit/s each way "
        f"({link['cap_mib_s']} MiB/s; the API calls and the NBD port alike); rounds: {n}, medians",
        f"  attach, from the POST at {BERLIN}: answered {ms('attach_api')} (its command "
        f"queued at {ms('attach_command_queued')}: the volume found at {PARIS}, the "
        f"attachment made there, its export begun at {ms('attach_export_begun')} and its "
        f"daemon up at {ms('attach_export_up')}; taken by the agent at "
        f"{ms('attach_command_taken')}; NBD connected over TLS and the disk plugged at "
        f"{ms('attach_command_answered')}); the guest's kernel probed the disk at "
        f"{ms('attach_guest_kernel')}; the guest saw it at {ms('attach_guest_seen')} "
        f"(best {a['attach_guest_seen']['best_s'] * 1000:,.0f}, worst "
        f"{a['attach_guest_seen']['worst_s'] * 1000:,.0f}; no goal)",
        f"  detach, from the DELETE: answered {ms('detach_api')}; the guest saw it gone at "
        f"{ms('detach_guest_gone')}",
        f"  the link, measured after each detach on the port the export used: a 64 MiB TCP "
        f"copy {BERLIN}→{PARIS} {link['copy_up_mib_s']} MiB/s, {PARIS}→{BERLIN} "
        f"{link['copy_down_mib_s']} MiB/s (one round trip included); a 4 KiB exchange "
        f"p50 {link['exchange_up_p50_ms']} / {link['exchange_down_p50_ms']} ms",
        f"  I/O on the volume's first {remote['region_mib']} MiB: the guest (O_DIRECT, with "
        "1, 4 or 8 operations in flight; or through its page cache, its caches dropped "
        "before each) against the link's anchor (sequential: the copy, its time per MiB "
        "as latency; 4 KiB: the exchange); ratio = guest ÷ anchor, median of the rounds",
        f"  {'test':40}{'flight':>7}{'ops':>6}{'guest':>15}{'link':>15}{'ratio':>8}"
        f"{'p50 guest':>12}{'link':>10}{'added':>11}",
    ]
    for test in REMOTE_SUITE:
        row = remote["io"].get(test.name)
        if row is not None:
            lines.append(_row(test, row, remote["suite"][test.name]["ops"] or REGION // test.bs))
    q = remote["queue"]
    ratios, qd1, buffered = goal["ratios"], goal["one_at_a_time"]["ratios"], goal["buffered"]
    lines += [
        f"  goal: sequential ≥ {goal['seq_fraction_of_link_at_least']:.0%} of the link, judged "
        f"with 8 requests of 1 MiB in flight (O_DIRECT): write {ratios['seq-write-qd8']:.0%}, "
        f"read {ratios['seq-read-qd8']:.0%}: {goal['verdict']}; one at a time "
        f"{qd1['seq-write']:.0%} / {qd1['seq-read']:.0%} ({goal['one_at_a_time']['verdict']}); "
        f"through the page cache: write {buffered['buf-write']:.0%}, read "
        f"{buffered['buf-read']:.0%} (read-ahead {q.get('read_ahead_kb', '?')} KiB, the "
        f"kernel's default) / {buffered['buf-read-ra']:.0%} ({remote['read_ahead_kb']} KiB)",
        f"  a 1 MiB read alone waits one round trip before its data: p50 "
        f"{_latency(seq['guest']['p50_us'])} = the link's time per MiB "
        f"{_latency(seq['anchor']['p50_us'])} {seq['added_p50_us'] / 1000:+,.1f} ms (the RTT: "
        f"{link['rtt_ms']:.0f} ms); with 4 or 8 in flight the round trips overlap, and each "
        "operation's latency is its wait behind the others on the link",
        f"  the guest's disk: read_ahead_kb {q.get('read_ahead_kb')}, max_sectors_kb "
        f"{q.get('max_sectors_kb')} (hw {q.get('max_hw_sectors_kb')}), nr_requests "
        f"{q.get('nr_requests')}, scheduler {q.get('scheduler')}; write-back from "
        f"{q.get('dirty_background_ratio')} %, writers held at {q.get('dirty_ratio')} % of "
        f"{int(q.get('mem_available_kb', 0)) // 1024} MiB available",
        f"  on the wire: {(wire['overhead'] - 1):+.1%} over the payload "
        f"({wire['payload_bytes'] / MIB:,.0f} MiB a round; NBD headers and TLS records "
        "counted, TCP/IP headers not; the attach's probe of the disk and the read-ahead "
        "past the region's end included)",
    ]
    return "\n".join([*lines, *render_relay(remote["relay"])])


def render_relay(relay: dict[str, Any]) -> list[str]:
    direct, vs_link, cpu = relay["against_direct"], relay["against_link"], relay["agent_cpu"]
    lines = [
        "  the relay: the same volume attached to a second guest at Berlin, one with a NIC "
        "(its QEMU in Berlin's network namespace, its NBD through a unix socket the agent "
        "relays to the export), after the first guest's suite each round; "
        f"attach: the guest saw the disk at "
        f"{relay['attach']['attach_guest_seen']['median_s'] * 1000:,.0f} ms",
        f"  {'test':40}{'relayed':>15}{'direct':>15}{'ratio':>8}{'÷ link':>8}"
        f"{'p50 relayed':>13}{'direct':>10}{'added':>11}",
    ]
    for test in RELAY_SUITE:
        row = direct.get(test.name)
        if row is None:
            continue
        small = test.bs <= SMALL
        g, d = row["guest"], row["anchor"]
        lines.append(
            f"  {test.label:40}{_throughput(g, small):>15}{_throughput(d, small):>15}"
            f"{row['throughput_ratio']:>8.3f}{vs_link[test.name]['throughput_ratio']:>8.3f}"
            f"{_latency(g['p50_us']):>13}{_latency(d['p50_us']):>10}"
            f"{row['added_p50_us'] / 1000:>+8,.2f} ms"
        )
    lines.append(
        f"  the agent's CPU: {cpu['direct_cpu_share']:.1%} of a core while the direct guest's "
        f"suite ran (its polls), {cpu['relayed_cpu_share']:.1%} while the relayed one's did: "
        f"the relay {cpu['relay_cpu_us_per_mib']:,.0f} µs per MiB on the wire"
    )
    return lines
