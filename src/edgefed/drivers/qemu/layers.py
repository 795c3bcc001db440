"""A running guest's disk frozen into a layer, and what it wrote since (mild relocation).

A mild relocation (``services/compute/relocation_out.py``) sends the disk while the
guest runs, then, once it is stopped, only what it wrote meanwhile:

- **freeze**: QMP ``blockdev-snapshot-sync`` on the root disk's top node: QEMU makes a
  new qcow2 (``disk.top-<ns>.qcow2``, its backing file the old top, by absolute path)
  and writes there from then on; the old top is only read. The plan names the new file
  as the root disk (``guest.json``: a QEMU started again from it sees every write) and
  remembers the old one (``extra["layers"]``, the frozen paths, last on top). The frozen
  disk is then copied standalone (``qemu-img convert -U``: QEMU holds it, unwritten).
- **export the changes**, the guest stopped: the top layer is copied to
  ``disk.changes.qcow2`` with its backing file renamed ``base.qcow2`` (relative: the
  file does not stand alone, and the destination names its own base with
  ``disks.join_layers``), then committed into the frozen layer under it (``qemu-img
  commit``), which the plan names again: the guest's disk is one piece as before, a
  start here (a move undone) runs it as it was. The copy stays in the guest's
  directory until the next freeze or the guest's removal, so asking again gives it
  again.

Every step leaves the plan true to the files: a QEMU started between two of them runs
the guest with everything it wrote.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from pathlib import Path

from edgefed.drivers.base import PowerState
from edgefed.drivers.qemu.cmdline import DiskPlan
from edgefed.drivers.qemu.disks import CONVERT_TIMEOUT, TOOL_TIMEOUT, convert_standalone
from edgefed.drivers.qemu.errors import InvalidGuestState, QemuError
from edgefed.drivers.qemu.guest import STATE_NAMES, Guest
from edgefed.drivers.qemu.tools import run_tool

ROOT = "root"  # the root disk's node in the plan (hypervisor.py)
CHANGES_BACKING = "base.qcow2"


def root_disk(guest: Guest) -> DiskPlan:
    for disk in guest.plan.disks:
        if disk.node == ROOT:
            return disk
    raise QemuError(f"guest {guest.id} has no root disk of its own (boot from volume?)")


def changes_file(guest: Guest) -> Path:
    return guest.files.directory / "disk.changes.qcow2"


def _frozen(guest: Guest) -> list[str]:
    return list(guest.plan.extra.get("layers") or [])


def _save_root(guest: Guest, path: str, layers: list[str]) -> None:
    disks = tuple(
        dataclasses.replace(d, path=path) if d.node == ROOT else d for d in guest.plan.disks
    )
    extra = {**guest.plan.extra, "layers": layers}
    guest.plan = dataclasses.replace(guest.plan, disks=disks, extra=extra)
    guest.save_plan()


async def _top_node(guest: Guest) -> str:
    """The node the root disk's device writes to now (``root`` until a freeze)."""
    for device in await guest.monitor().execute("query-block"):
        qdev = str(device.get("qdev") or "")
        inserted = device.get("inserted") or {}
        if f"/{ROOT}-disk/" in qdev or qdev == f"{ROOT}-disk":
            return str(inserted.get("node-name") or ROOT)
    return ROOT


async def freeze(guest: Guest, target: Path) -> None:
    """Freeze the running guest's root disk; the frozen disk standalone at ``target``."""
    state = guest.power_state()
    if state not in (PowerState.RUNNING, PowerState.PAUSED):
        raise InvalidGuestState(guest.id, "freeze the disk of", STATE_NAMES[state])
    disk = root_disk(guest)
    await guest.attach()
    stamp = time.time_ns()
    top = guest.files.directory / f"disk.top-{stamp}.qcow2"
    await guest.monitor().execute(
        "blockdev-snapshot-sync",
        {
            "node-name": await _top_node(guest),
            "snapshot-file": str(top),
            "snapshot-node-name": f"top{stamp}",
            "format": "qcow2",
            "mode": "absolute-paths",
        },
    )
    _save_root(guest, str(top), [*_frozen(guest), disk.path])
    changes_file(guest).unlink(missing_ok=True)  # of an earlier move, undone
    await convert_standalone(
        Path(disk.path), target, qemu_img=guest.settings.qemu_img, force_share=True
    )


async def export_changes(guest: Guest, target: Path) -> None:
    """What the stopped guest wrote since its last freeze, at ``target``; its disk one
    piece again."""
    state = guest.power_state()
    if state in (PowerState.RUNNING, PowerState.PAUSED, PowerState.SUSPENDED):
        raise InvalidGuestState(guest.id, "export the changes of", STATE_NAMES[state])
    qemu_img = guest.settings.qemu_img
    changes = changes_file(guest)
    layers = _frozen(guest)
    if layers:  # the top not folded yet: copy it, then fold it
        top = Path(root_disk(guest).path)
        partial = changes.with_name(f".{changes.name}.partial")
        try:
            shutil.copyfile(top, partial)
            await run_tool(
                qemu_img, "rebase", "-u", "-f", "qcow2", "-F", "qcow2", "-b", CHANGES_BACKING,
                str(partial), timeout=TOOL_TIMEOUT,
            )  # fmt: skip
            with open(partial, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(partial, changes)
        finally:
            partial.unlink(missing_ok=True)
        await run_tool(qemu_img, "commit", "-q", "-d", "-f", "qcow2", str(top),
                       timeout=CONVERT_TIMEOUT)  # fmt: skip
        _save_root(guest, layers[-1], layers[:-1])
        top.unlink(missing_ok=True)
    if not changes.exists():
        raise InvalidGuestState(guest.id, "export the changes of", "not frozen")
    shutil.copyfile(changes, target)
