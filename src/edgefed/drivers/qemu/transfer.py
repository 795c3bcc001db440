"""Moving a guest's bytes: suspend to a file, resume from it, snapshot, hot-plug.

- **suspend**: pause, ``migrate`` the machine's state to ``suspend.state`` through a
  file descriptor passed over QMP (``getfd``: QEMU never opens a path or runs a
  ``cat`` for it), then ``quit``. The state is written to a partial file and renamed
  once complete, so a half-written state is never resumed.
- **resume**: a new QEMU from the same plan with ``-incoming defer``, the state file
  passed the same way to ``migrate-incoming``, then ``cont``; the file is removed.
- **snapshot** (``createImage``): a running guest's root disk is copied by a backup
  job (``drive-backup sync=full``: point-in-time, crash-consistent, the guest keeps
  running) into a qcow2 with no backing file; a stopped guest's disk goes through
  ``qemu-img convert``. Either way the copy boots alone, uncompressed as Nova's
  default (zlib cost 40 times the copy: docs/bench.md, relocation).
- **hot-plug**: ``blockdev-add`` + ``device_add virtio-blk-pci``; unplug waits for
  the guest to release the device (``DEVICE_DELETED``) before ``blockdev-del``.
  Attached volumes are recorded in the plan and plugged again at the next launch. A
  plug sent again (its agent was killed) keeps what QEMU already has of it. An NBD
  volume of a guest in a network namespace goes through the agent's relay
  (``relay.py``), started before the ``blockdev-add`` and stopped at the unplug.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from pathlib import Path

from edgefed.drivers.base import PowerState
from edgefed.drivers.qemu.cmdline import DiskPlan, blockdev_node, tls_object
from edgefed.drivers.qemu.disks import convert_standalone
from edgefed.drivers.qemu.errors import InvalidGuestState, QemuError, QmpError
from edgefed.drivers.qemu.guest import STATE_NAMES, Guest
from edgefed.drivers.qemu.layout import GuestFiles
from edgefed.drivers.qemu.qmp import Event, QmpClient
from edgefed.drivers.qemu.relay import relay_socket
from edgefed.drivers.qemu.spec import BlockDevice


def _migration_done(event: Event) -> bool:
    return event.get("data", {}).get("status") in ("completed", "failed", "cancelled")


async def _migration_events(monitor: QmpClient) -> None:
    """MIGRATION events are off unless asked for (QEMU's "events" capability)."""
    await monitor.execute(
        "migrate-set-capabilities", {"capabilities": [{"capability": "events", "state": True}]}
    )


async def _pass_fd(monitor: QmpClient, name: str, path: Path, flags: int) -> None:
    fd = os.open(path, flags, 0o600)
    try:
        await monitor.execute("getfd", {"fdname": name}, fds=[fd])
    finally:
        os.close(fd)  # QEMU holds its own copy now


async def suspend(guest: Guest) -> None:
    state = guest.power_state()
    if state == PowerState.SUSPENDED:
        return
    if state not in (PowerState.RUNNING, PowerState.PAUSED):
        raise InvalidGuestState(guest.id, "suspend", STATE_NAMES[state])
    await guest.attach()
    monitor = guest.monitor()
    settings = guest.settings
    partial = guest.files.suspend_state.with_name("suspend.state.partial")
    await monitor.execute("stop")
    await _migration_events(monitor)
    await _pass_fd(monitor, "suspend", partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    done = monitor.expect("MIGRATION", where=_migration_done)
    try:
        await monitor.execute("migrate", {"uri": "fd:suspend"})
        event = await done.wait(timeout=settings.migrate_timeout)
    except QmpError:
        with contextlib.suppress(QmpError):
            await monitor.execute("migrate_cancel")
        event = {"data": {"status": "failed"}}
    if event["data"]["status"] != "completed":
        partial.unlink(missing_ok=True)
        if state == PowerState.RUNNING:
            await monitor.execute("cont")
        raise QemuError(f"suspending guest {guest.id} failed: the state could not be saved")
    os.replace(partial, guest.files.suspend_state)
    await guest.hard_stop()


async def resume(guest: Guest) -> None:
    state = guest.power_state()
    if state in (PowerState.RUNNING, PowerState.PAUSED):
        if state == PowerState.PAUSED:
            raise InvalidGuestState(guest.id, "resume", "paused")
        return
    if state != PowerState.SUSPENDED:
        raise InvalidGuestState(guest.id, "resume", STATE_NAMES[state])
    await guest.launch(incoming=True)
    monitor = guest.monitor()
    try:
        await _migration_events(monitor)
        await _pass_fd(monitor, "resume", guest.files.suspend_state, os.O_RDONLY)
        done = monitor.expect("MIGRATION", where=_migration_done)
        await monitor.execute("migrate-incoming", {"uri": "fd:resume"})
        event = await done.wait(timeout=guest.settings.migrate_timeout)
        if event["data"]["status"] != "completed":
            raise QemuError(f"resuming guest {guest.id} failed: the saved state was refused")
        status = (await monitor.execute("query-status"))["status"]
        if status != "running":
            await monitor.execute("cont")
    except BaseException:
        await guest.hard_stop()  # the state file stays: the resume can be tried again
        raise
    guest.files.suspend_state.unlink(missing_ok=True)


async def snapshot(guest: Guest, target: Path) -> None:
    """A standalone qcow2 copy of the root disk at ``target``."""
    state = guest.power_state()
    if state not in (PowerState.RUNNING, PowerState.PAUSED):
        # the plan's: a frozen disk's top layer while a mild relocation runs (layers.py)
        root = next((Path(d.path) for d in guest.plan.disks if d.node == "root"),
                    guest.files.root_disk)  # fmt: skip
        await convert_standalone(root, target, qemu_img=guest.settings.qemu_img)
        return
    await guest.attach()
    monitor = guest.monitor()
    partial = target.with_name(f".{target.name}.partial")
    job = f"snapshot-{os.getpid()}"
    done = monitor.expect(
        ("BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED"),
        where=lambda event: event.get("data", {}).get("device") == job,
    )
    try:
        await monitor.execute(
            "drive-backup",
            {
                "job-id": job,
                "device": "root",
                "target": str(partial),
                "format": "qcow2",
                "sync": "full",
                "mode": "absolute-paths",
            },
        )
        try:
            event = await done.wait(timeout=guest.settings.snapshot_timeout)
        except QmpError:
            with contextlib.suppress(QmpError):
                await monitor.execute("block-job-cancel", {"device": job, "force": True})
            raise
        data = event.get("data", {})
        if event.get("event") != "BLOCK_JOB_COMPLETED" or data.get("error"):
            raise QemuError(
                f"the snapshot of guest {guest.id} failed: {data.get('error', 'cancelled')}"
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _psk_dir(directory: Path, node: str) -> Path:
    return directory / f"psk-{node}"


def relay_sockets(files: GuestFiles, netns: str | None) -> Path | None:
    """Where a guest's NBD disks find the agent's relays: its sockets directory when it
    runs in a network namespace (the exports are not reachable from there), else None
    (QEMU connects to them itself)."""
    return files.sockets if netns else None


def disk_of(
    directory: Path,
    device: BlockDevice,
    *,
    node: str | None = None,
    boot: bool = False,
    sockets: Path | None = None,
) -> DiskPlan:
    """The device as a guest's plan holds it; an NBD volume's key written for QEMU
    (``keys.psk`` in a directory of the guest's own, 0600). ``sockets``: the guest's
    sockets directory when it runs in a network namespace, where QEMU reaches an NBD
    export through the agent's relay."""
    node = node or device.device_id
    nbd = None
    if device.nbd is not None:
        keys = _psk_dir(directory, node)
        keys.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(keys / "keys.psk", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"{device.nbd['tls_psk_identity']}:{device.nbd['tls_psk_key']}\n")
        nbd = {
            "host": str(device.nbd["host"]),
            "port": int(device.nbd["port"]),
            "export": str(device.nbd["export"]),
            "identity": str(device.nbd["tls_psk_identity"]),
            "tls_id": f"tls-{node}",
            "psk_dir": str(keys),
        }
        if sockets is not None:
            nbd["socket"] = str(relay_socket(sockets, node))
    return DiskPlan(
        node=node,
        path=str(device.path),
        format=device.disk_format,
        read_only=device.read_only,
        serial=(device.serial or device.device_id)[:20],
        boot=boot,
        nbd=nbd,
    )


async def attach_block(guest: Guest, device: BlockDevice) -> None:
    """Plug the disk; nothing to do when the guest has it (a command sent again)."""
    for volume in guest.plan.volumes:
        if volume.node == device.device_id:
            if volume.path == str(device.path):
                return
            raise InvalidGuestState(guest.id, f"attach {device.device_id} to", "already using it")
    sockets = relay_sockets(guest.files, guest.plan.netns)
    disk = disk_of(guest.files.directory, device, sockets=sockets)
    if guest.power_state() in (PowerState.RUNNING, PowerState.PAUSED):
        await guest.attach()
        monitor = guest.monitor()
        await guest.relays.open(disk)
        try:
            # An attach whose agent was killed may have left QEMU with part of it (the
            # monitor runs what it was sent): what QEMU has is kept, the rest added.
            tls, node, plugged = await _plugged(monitor, disk)
            if disk.nbd is not None and not tls:
                await monitor.execute("object-add", tls_object(disk))
            if not node:
                await monitor.execute("blockdev-add", blockdev_node(disk))
            if not plugged:
                await _add_device(monitor, disk)
        except BaseException:
            await guest.relays.close(disk)
            raise
    guest.plan = dataclasses.replace(guest.plan, volumes=(*guest.plan.volumes, disk))
    guest.save_plan()


async def _add_device(monitor: QmpClient, disk: DiskPlan) -> None:
    """The guest's device on the disk's node; a refusal takes the node away again."""
    try:
        await monitor.execute(
            "device_add",
            {
                "driver": "virtio-blk-pci",
                "drive": disk.node,
                "id": f"{disk.node}-disk",
                "serial": disk.serial[:20],
            },
        )
    except QmpError:
        await monitor.execute("blockdev-del", {"node-name": disk.node})
        if disk.nbd is not None:
            await monitor.execute("object-del", {"id": disk.nbd["tls_id"]})
        raise


async def _plugged(monitor: QmpClient, disk: DiskPlan) -> tuple[bool, bool, bool]:
    """What QEMU has of the disk: (its TLS object, its block node, its device)."""
    nodes = await monitor.execute("query-named-block-nodes", {"flat": True})
    devices = await monitor.execute("qom-list", {"path": "/machine/peripheral"})
    tls = False
    if disk.nbd is not None:
        objects = await monitor.execute("qom-list", {"path": "/objects"})
        tls = any(o.get("name") == disk.nbd["tls_id"] for o in objects)
    return (
        tls,
        any(n.get("node-name") == disk.node for n in nodes),
        any(d.get("name") == f"{disk.node}-disk" for d in devices),
    )


async def detach_block(guest: Guest, device_id: str) -> None:
    """Unplug the disk once the guest released it; nothing to do when it has none."""
    disks = [v for v in guest.plan.volumes if v.node == device_id]
    if not disks:
        return
    if guest.power_state() in (PowerState.RUNNING, PowerState.PAUSED):
        await guest.attach()
        monitor = guest.monitor()
        deleted = monitor.expect(
            "DEVICE_DELETED", where=lambda e: e.get("data", {}).get("device") == f"{device_id}-disk"
        )
        await monitor.execute("device_del", {"id": f"{device_id}-disk"})
        await deleted.wait(timeout=guest.settings.hotplug_timeout)
        await monitor.execute("blockdev-del", {"node-name": device_id})
        if disks[0].nbd is not None:
            await monitor.execute("object-del", {"id": f"tls-{device_id}"})
    await guest.relays.close(disks[0])
    shutil.rmtree(_psk_dir(guest.files.directory, device_id), ignore_errors=True)
    volumes = tuple(v for v in guest.plan.volumes if v.node != device_id)
    guest.plan = dataclasses.replace(guest.plan, volumes=volumes)
    guest.save_plan()
