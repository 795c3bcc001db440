"""Live migration of a running guest between two hosts' QEMUs, disks included.

No storage is shared: each host keeps a guest's disks as qcow2 overlays on its own
cached copy of the base image (checked by its sha256, so the same bytes). The move is
what Nova's libvirt driver does for a block migration (``VIR_MIGRATE_NON_SHARED_INC``):

0. **devices** (source): the guest's devices' PCI addresses (``query-pci``); a volume
   hot-plugged while the guest ran sits where QEMU put it then, not where a command
   line would, and a migration needs the same devices at the same addresses.
1. **receive** (destination): the same plan built from the same spec (the same
   machine, CPU model and devices, pinned at the source's addresses), its disks made
   as for a spawn, QEMU started with ``-incoming defer``; an NBD server
   (``nbd-server-start``) exports the writable disks (``block-export-add``), and the
   agent listens for the migration stream.
2. **send** (source): ``blockdev-mirror`` of each writable disk to the destination's
   export (``sync=top`` for the root overlay, whose base the destination has; ``full``
   for ephemeral and swap, whose formatted bases are the host's own), then, once every
   mirror is ready, ``migrate`` of the RAM with ``pause-before-switchover``: with the
   guest paused, the mirrors are completed (``block-job-cancel`` on a ready job leaves
   the target a point-in-time copy) and the switchover continued. QEMU's ``downtime``
   (``query-migrate``) is the time the guest did not run.
3. **settle** (destination): the incoming migration completed and the guest runs
   there; the exports are removed. The source's QEMU, paused since the switchover,
   is then destroyed; had the destination failed, ``recover`` resumes it (``cont``
   takes its disks back), so the guest always runs somewhere.

Both streams are authenticated and encrypted: TLS with a pre-shared key (QEMU's
``tls-creds-psk``), a random key per migration that the site hands to both agents over
their own authenticated channels. The agents open the TCP connections themselves (the
destination listens on the address the site names, the source connects) and pass them
to QEMU as file descriptors (``getfd``): QEMU listens on nothing, and a guest in a
network namespace migrates as well. Read-only disks (the config drive, made again from
the same spec) and volumes are not copied: a volume is shared storage (the site's file,
or an NBD export either host reaches), opened by the destination's ``-incoming`` QEMU
inactive and taken over at the switchover once the source flushed and let it go.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edgefed.drivers.base import PowerState
from edgefed.drivers.qemu.cmdline import DiskPlan
from edgefed.drivers.qemu.errors import QemuError, QmpError
from edgefed.drivers.qemu.guest import Guest
from edgefed.drivers.qemu.qmp import Event, Expectation, QmpClient

TLS_ID = "migration-tls"
PSK_DIR = "psk-migration"
# The longest the guest may be paused for the switchover (QEMU's default is 300 ms too,
# stated here since the figure is reported), and the stream's bandwidth cap (QEMU's
# default, 32 MiB/s, is for a shared production link, not for a test's loopback). A guest
# that dirties its RAM faster than it goes is slowed down (``auto-converge``, as Nova's
# live_migration_permit_auto_converge) rather than left to run into the deadline.
DOWNTIME_LIMIT_MS = 300
MAX_BANDWIDTH = 1 << 30
FINISHED = ("completed", "failed", "cancelled")


@dataclass(frozen=True, slots=True)
class MigrationKey:
    """The pre-shared key of one migration (hex), and the identity it goes by."""

    identity: str
    key: str


@dataclass(slots=True)
class Incoming:
    """The destination's half while the move runs."""

    address: str
    nbd_port: int
    migration_port: int
    exports: tuple[str, ...]
    done: Expectation
    accepting: asyncio.Task[None]
    listeners: list[socket.socket] = field(default_factory=list)

    def close(self) -> None:
        self.accepting.cancel()
        for listener in self.listeners:
            listener.close()


def copied(plan_disks: tuple[DiskPlan, ...]) -> list[DiskPlan]:
    """The disks a move copies: the guest's own writable files."""
    return [d for d in plan_disks if not d.read_only and d.nbd is None]


def _write_key(guest: Guest, key: MigrationKey) -> str:
    directory = guest.files.directory / PSK_DIR
    directory.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(directory / "keys.psk", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"{key.identity}:{key.key}\n")
    return str(directory)


def _listener(address: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.bind((address, 0))
    sock.listen(4)
    return sock


async def _connect(address: str, port: int, *, timeout: float) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        async with asyncio.timeout(timeout):
            await asyncio.get_running_loop().sock_connect(sock, (address, port))
    except (OSError, TimeoutError) as exc:
        sock.close()
        raise QemuError(f"cannot reach the destination at {address}:{port}: {exc!r}") from exc
    return sock


async def _give(monitor: QmpClient, name: str, sock: socket.socket) -> None:
    """The socket handed to QEMU by name; this process's copy closed."""
    try:
        await monitor.execute("getfd", {"fdname": name}, fds=[sock.fileno()])
    finally:
        sock.close()


def _of_job(job: str) -> Callable[[Event], bool]:
    def where(event: Event) -> bool:
        return bool(event.get("data", {}).get("device") == job)

    return where


def _status_in(*statuses: str) -> Callable[[Event], bool]:
    def where(event: Event) -> bool:
        return event.get("data", {}).get("status") in statuses

    return where


async def devices(guest: Guest) -> dict[str, str]:
    """The guest's PCI devices with an id (QEMU's ``query-pci``): id -> ``slot.function``
    (hex), as ``-device ...,addr=`` takes it."""
    await guest.attach()
    found: dict[str, str] = {}
    for bus in await guest.monitor().execute("query-pci"):
        for device in bus.get("devices", []):
            if device.get("qdev_id") and int(device.get("bus", 0)) == 0:
                found[str(device["qdev_id"])] = (
                    f"{int(device['slot']):x}.{int(device['function']):x}"
                )
    return found


async def receive(guest: Guest, *, key: MigrationKey, address: str) -> Incoming:
    """Start the guest's QEMU waiting for the migration (its disks made by the caller)
    and open what the source will send to; the caller keeps the ``Incoming``."""
    settings = guest.settings
    await guest.launch(incoming=True)
    monitor = guest.monitor()
    await monitor.execute(
        "object-add",
        {"qom-type": "tls-creds-psk", "id": TLS_ID, "endpoint": "server",
         "dir": _write_key(guest, key)},
    )  # fmt: skip
    await monitor.execute(
        "migrate-set-capabilities", {"capabilities": [{"capability": "events", "state": True}]}
    )
    await monitor.execute("migrate-set-parameters", {"tls-creds": TLS_ID})
    nbd = _listener(address)
    try:
        migration = _listener(address)
    except OSError:
        nbd.close()
        raise
    listeners = [migration]
    try:
        nbd_port = nbd.getsockname()[1]
        await _give(monitor, "migration-nbd", nbd)  # QEMU accepts on it
        await monitor.execute(
            "nbd-server-start",
            {"addr": {"type": "fd", "data": {"str": "migration-nbd"}}, "tls-creds": TLS_ID},
        )
        exports = []
        for disk in copied(guest.plan.disks):
            await monitor.execute(
                "block-export-add",
                {"type": "nbd", "id": f"migration-{disk.node}", "node-name": disk.node,
                 "name": disk.node, "writable": True},
            )  # fmt: skip
            exports.append(disk.node)
        done = monitor.expect("MIGRATION", where=_status_in(*FINISHED))
        accepting = asyncio.create_task(
            _accept_stream(monitor, migration, timeout=settings.migrate_timeout),
            name=f"migration-in-{guest.id}",
        )
    except BaseException:
        migration.close()
        raise
    return Incoming(
        address=address,
        nbd_port=nbd_port,
        migration_port=migration.getsockname()[1],
        exports=tuple(exports),
        done=done,
        accepting=accepting,
        listeners=listeners,
    )


async def _accept_stream(monitor: QmpClient, listener: socket.socket, *, timeout: float) -> None:
    """The migration stream's connection, handed to QEMU's ``migrate-incoming``."""
    async with asyncio.timeout(timeout):
        conn, _ = await asyncio.get_running_loop().sock_accept(listener)
    listener.close()
    await _give(monitor, "migration-in", conn)
    await monitor.execute("migrate-incoming", {"uri": "fd:migration-in"})


async def settle(guest: Guest, incoming: Incoming) -> PowerState:
    """Once the incoming migration completed: the exports and the key removed; the
    guest's power state (it runs, or stays paused as it was at the source)."""
    settings = guest.settings
    try:
        event = await incoming.done.wait(timeout=settings.migrate_timeout)
        if incoming.accepting.done() and not incoming.accepting.cancelled():
            error = incoming.accepting.exception()
            if error is not None:
                raise QemuError(f"the migration stream never arrived: {error!r}")
        status = event.get("data", {}).get("status")
        if status != "completed":
            raise QemuError(f"the incoming migration of guest {guest.id} {status}")
    finally:
        incoming.close()
    return await arrived(guest, incoming.exports)


async def arrived(guest: Guest, exports: tuple[str, ...]) -> PowerState:
    """The exports and the key of a completed arrival removed (again: each removal
    that finds nothing is fine); the guest's power state."""
    monitor = guest.monitor()
    for node in exports:
        with contextlib.suppress(QmpError):
            await monitor.execute("block-export-del", {"id": f"migration-{node}"})
    for command, arguments in (
        ("nbd-server-stop", {}),
        ("migrate-set-parameters", {"tls-creds": ""}),  # a later suspend writes plain
        ("object-del", {"id": TLS_ID}),
    ):
        with contextlib.suppress(QmpError):
            await monitor.execute(command, arguments)
    shutil.rmtree(guest.files.directory / PSK_DIR, ignore_errors=True)
    status = (await monitor.execute("query-status"))["status"]
    guest._run_state = status
    return guest.power_state()


async def send(
    guest: Guest, *, key: MigrationKey, address: str, nbd_port: int, migration_port: int
) -> dict[str, Any]:
    """Copy the disks and the RAM to the destination; returns QEMU's figures once the
    migration completed, the source's QEMU left paused (``recover`` or destroy it).
    A failure before the switchover leaves the guest running here as it was."""
    settings = guest.settings
    await guest.attach()
    monitor = guest.monitor()
    started = time.monotonic()
    was_running = guest.power_state() == PowerState.RUNNING
    disks = copied(guest.plan.disks)
    jobs: list[str] = []
    nodes: list[str] = []
    try:
        await monitor.execute(
            "object-add",
            {"qom-type": "tls-creds-psk", "id": TLS_ID, "endpoint": "client",
             "dir": _write_key(guest, key), "username": key.identity},
        )  # fmt: skip
        ready = [
            monitor.expect(
                (
                    "BLOCK_JOB_READY",
                    "BLOCK_JOB_COMPLETED",
                    "BLOCK_JOB_CANCELLED",
                    "BLOCK_JOB_ERROR",
                ),
                where=_of_job(f"migration-{d.node}"),
            )
            for d in disks
        ]
        for disk in disks:
            name = f"migration-{disk.node}"
            sock = await _connect(address, nbd_port, timeout=settings.qmp_timeout)
            await _give(monitor, name, sock)
            await monitor.execute(
                "blockdev-add",
                {"driver": "nbd", "node-name": name, "server": {"type": "fd", "str": name},
                 "export": disk.node, "tls-creds": TLS_ID},
            )  # fmt: skip
            nodes.append(name)
            await monitor.execute(
                "blockdev-mirror",
                {"job-id": name, "device": disk.node, "target": name,
                 "sync": "top" if disk.node == "root" else "full"},
            )  # fmt: skip
            jobs.append(name)
        for expectation in ready:
            event = await expectation.wait(timeout=settings.migrate_timeout)
            if event.get("event") != "BLOCK_JOB_READY":
                raise QemuError(f"copying a disk failed: {event.get('data', {})}")
        disks_ms = (time.monotonic() - started) * 1000
        await monitor.execute(
            "migrate-set-capabilities",
            {"capabilities": [{"capability": "events", "state": True},
                              {"capability": "pause-before-switchover", "state": True},
                              {"capability": "auto-converge", "state": True}]},
        )  # fmt: skip
        await monitor.execute(
            "migrate-set-parameters",
            {"tls-creds": TLS_ID, "tls-hostname": address,
             "downtime-limit": DOWNTIME_LIMIT_MS, "max-bandwidth": MAX_BANDWIDTH},
        )  # fmt: skip
        stream = await _connect(address, migration_port, timeout=settings.qmp_timeout)
        await _give(monitor, "migration-out", stream)
        paused = monitor.expect("MIGRATION", where=_status_in("pre-switchover", *FINISHED))
        await monitor.execute("migrate", {"uri": "fd:migration-out"})
        event = await paused.wait(timeout=settings.migrate_timeout)
        if event["data"]["status"] != "pre-switchover":
            raise QemuError(f"the migration {event['data']['status']}: {await _why(monitor)}")
        # The guest is paused: the disks' last writes go across, then the switchover.
        for job in jobs:
            completed = monitor.expect(
                ("BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED"),
                where=_of_job(job),
            )
            await monitor.execute("block-job-cancel", {"device": job})
            event = await completed.wait(timeout=settings.migrate_timeout)
            if event.get("event") != "BLOCK_JOB_COMPLETED" or event["data"].get("error"):
                raise QemuError(f"the disk copy {job} did not complete: {event.get('data')}")
        jobs.clear()
        finished = monitor.expect("MIGRATION", where=_status_in(*FINISHED))
        await monitor.execute("migrate-continue", {"state": "pre-switchover"})
        event = await finished.wait(timeout=settings.migrate_timeout)
        if event["data"]["status"] != "completed":
            raise QemuError(f"the migration {event['data']['status']}: {await _why(monitor)}")
        info = await monitor.execute("query-migrate")
    except BaseException:
        await _undo(guest, jobs, nodes, resume=was_running)
        raise
    ram = info.get("ram", {})
    return {
        "downtime_ms": float(info.get("downtime", 0)),
        "total_ms": float(info.get("total-time", 0)) + disks_ms,
        "disks_ms": disks_ms,
        "ram_bytes": int(ram.get("transferred", 0)),
        "was_running": was_running,
    }


async def _why(monitor: QmpClient) -> str:
    with contextlib.suppress(QmpError):
        info = await monitor.execute("query-migrate")
        return str(info.get("error-desc") or info.get("status"))
    return "QEMU does not say why"


async def _undo(guest: Guest, jobs: list[str], nodes: list[str], *, resume: bool) -> None:
    """After a failed send: the migration and the disk copies cancelled, their nodes
    and the key removed, the guest running again if it ran."""
    with contextlib.suppress(QmpError, QemuError):
        monitor = guest.monitor()
        with contextlib.suppress(QmpError):
            await monitor.execute("migrate_cancel")
        for job in jobs:
            with contextlib.suppress(QmpError):
                gone = monitor.expect(
                    ("BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED"),
                    where=_of_job(job),
                )
                await monitor.execute("block-job-cancel", {"device": job, "force": True})
                await gone.wait(timeout=guest.settings.qmp_timeout)
        for node in nodes:
            with contextlib.suppress(QmpError):
                await monitor.execute("blockdev-del", {"node-name": node})
        await _forget_key(monitor)
        if resume:
            await _resume(monitor)
    shutil.rmtree(guest.files.directory / PSK_DIR, ignore_errors=True)


async def _forget_key(monitor: QmpClient) -> None:
    for command, arguments in (
        ("migrate-set-capabilities",
         {"capabilities": [{"capability": "pause-before-switchover", "state": False}]}),
        ("migrate-set-parameters", {"tls-creds": ""}),
        ("object-del", {"id": TLS_ID}),
    ):  # fmt: skip
        with contextlib.suppress(QmpError):
            await monitor.execute(command, arguments)


async def _resume(monitor: QmpClient) -> None:
    """``cont`` once the migration is no longer active (a cancel takes a moment)."""
    for _ in range(50):
        status = (await monitor.execute("query-status"))["status"]
        if status == "running":
            return
        if status not in ("finish-migrate", "inmigrate"):
            with contextlib.suppress(QmpError):
                await monitor.execute("cont")
                return
        await asyncio.sleep(0.1)


async def recover(guest: Guest, *, was_running: bool) -> None:
    """The destination failed after the switchover: the source's guest, paused with its
    disks let go, takes them back and runs again (``cont``)."""
    await guest.attach()
    monitor = guest.monitor()
    for disk in copied(guest.plan.disks):  # the mirrors' targets, done with
        with contextlib.suppress(QmpError):
            await monitor.execute("blockdev-del", {"node-name": f"migration-{disk.node}"})
    await _forget_key(monitor)
    shutil.rmtree(guest.files.directory / PSK_DIR, ignore_errors=True)
    if was_running:
        await _resume(monitor)
        guest._run_state = (await monitor.execute("query-status"))["status"]
