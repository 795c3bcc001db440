"""QEMU's command line for a guest, from a ``LaunchPlan`` kept in ``guest.json``.

The plan is what stays true across launches (disks, NICs, kernel, accelerator, the
volumes attached since); the command line is derived from it at each launch, so a
start after a stop, a resume (``-incoming defer``) and an adopted guest all run the
same machine. docs/qemu.md explains each flag; in short:

- ``-name guest=…,debug-threads=on``: ps and top show the guest, vCPU threads are
  named (``CPU 0/TCG``), diagnostics read their CPU time;
- ``-uuid``: the guest's SMBIOS uuid is the server's id, and the process says whose
  it is (adoption reads it in /proc/<pid>/cmdline);
- ``-smbios type=1,product=OpenStack Nova``: cloud-init's ds-identify looks for it;
- ``-nodefaults -no-user-config -display none``: no device we did not ask for;
- ``-sandbox on,obsolete=deny,resourcecontrol=deny``: seccomp; spawn and
  elevateprivileges cannot be denied with ``-daemonize`` in QEMU 7.2 (the filter is
  installed before the daemonizing fork and its setsid);
- QMP and the serial console on unix sockets (``server=on,wait=off``), the serial
  also logged to ``console.log``; ``-pidfile`` (locked while QEMU runs), ``-daemonize``;
- ``-blockdev`` in JSON (a path with a comma cannot break it) under virtio-blk,
  ``discard=unmap`` so a trimmed guest gives space back; the root disk boots first;
- virtio-net on ``-netdev tap,ifname=…,script=no,downscript=no``: the tap exists
  already (the networking side made it), QEMU only opens it;
- ``virtio-rng-pci``: entropy at boot (cloud images block on getrandom without it);
- ``addr=`` on the devices whose PCI address the plan pins (``extra["pci"]``: a guest
  that arrived by live migration has its source's), those first; QEMU places the others.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from edgefed.drivers.qemu.layout import GuestFiles
from edgefed.drivers.qemu.process import netns_prefix

SANDBOX = "on,obsolete=deny,resourcecontrol=deny"
CPU_MODEL = {"kvm": "host", "tcg": "max"}


@dataclass(frozen=True, slots=True)
class DiskPlan:
    node: str  # QEMU's node name and device id prefix; a volume's device_id
    path: str
    format: str
    read_only: bool = False
    boot: bool = False
    serial: str = ""
    # A volume of another site: an NBD export over TLS (host, port, export, identity,
    # tls_id, psk_dir: the directory of its ``keys.psk``; socket: the agent's relay to
    # host:port, for a guest in a network namespace); ``path`` is unused then.
    nbd: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class NicPlan:
    tap: str
    mac: str


@dataclass(frozen=True, slots=True)
class LaunchPlan:
    """Everything a launch needs, persisted as ``guest.json``."""

    id: str
    name: str
    vcpus: int
    ram_mb: int
    accel: str
    disks: tuple[DiskPlan, ...]
    nics: tuple[NicPlan, ...] = ()
    kernel: str | None = None
    initrd: str | None = None
    append: str | None = None
    netns: str | None = None
    machine: str = "pc"
    volumes: tuple[DiskPlan, ...] = ()  # hot-plugged, plugged again at the next launch
    created_at: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> LaunchPlan:
        data = json.loads(text)
        data["disks"] = tuple(DiskPlan(**d) for d in data["disks"])
        data["volumes"] = tuple(DiskPlan(**d) for d in data.get("volumes", ()))
        data["nics"] = tuple(NicPlan(**n) for n in data.get("nics", ()))
        return cls(**data)


def opt(value: str) -> str:
    """A value inside QEMU's ``key=value,…`` syntax: a comma is written twice."""
    return value.replace(",", ",,")


# Seconds a remote volume's I/O waits for its NBD connection to come back before it
# fails: a cut of the link stalls the guest's I/O for that long, then errors it.
NBD_RECONNECT_DELAY = 3600


def blockdev_node(disk: DiskPlan) -> dict[str, Any]:
    """QEMU's ``blockdev-add`` arguments for the disk."""
    file: dict[str, Any] = {"driver": "file", "filename": disk.path, "discard": "unmap"}
    if disk.nbd is not None:
        server: dict[str, Any] = {
            "type": "inet",
            "host": disk.nbd["host"],
            "port": str(disk.nbd["port"]),
        }
        if disk.nbd.get("socket"):  # a guest in a namespace: the agent's relay (relay.py)
            server = {"type": "unix", "path": disk.nbd["socket"]}
        file = {
            "driver": "nbd",
            "server": server,
            "export": disk.nbd["export"],
            "tls-creds": disk.nbd["tls_id"],
            "reconnect-delay": NBD_RECONNECT_DELAY,
        }
    return {
        "driver": disk.format,
        "node-name": disk.node,
        "read-only": disk.read_only,
        "discard": "unmap",
        "file": file,
    }


def tls_object(disk: DiskPlan) -> dict[str, Any]:
    """The ``tls-creds-psk`` client object an NBD disk names."""
    assert disk.nbd is not None
    return {
        "qom-type": "tls-creds-psk",
        "id": disk.nbd["tls_id"],
        "endpoint": "client",
        "dir": disk.nbd["psk_dir"],
        "username": disk.nbd["identity"],
    }


def blockdev(disk: DiskPlan) -> str:
    return json.dumps(blockdev_node(disk), separators=(",", ":"))


def disk_device(disk: DiskPlan) -> str:
    device = f"virtio-blk-pci,drive={disk.node},id={disk.node}-disk"
    if disk.boot:
        device += ",bootindex=1"
    if disk.serial:
        device += f",serial={opt(disk.serial[:20])}"  # virtio-blk serials are 20 bytes
    return device


PCI = "pci"  # the plan's ``extra`` key: device id -> PCI address ("slot.function", hex)


def pci_addresses(plan: LaunchPlan) -> dict[str, str]:
    """The PCI addresses the plan pins (those of the QEMU a live migration came from)."""
    pinned = plan.extra.get(PCI)
    return {str(k): str(v) for k, v in pinned.items()} if isinstance(pinned, dict) else {}


def device_args(devices: list[tuple[str, str]], pinned: dict[str, str]) -> list[str]:
    """``-device`` for each (id, device): those with a pinned address first, at it (a
    device QEMU places itself cannot take their slots), then the others in order, where
    QEMU places them (the lowest free slot), as at every launch."""
    argv: list[str] = []
    for device_id, device in devices:
        if device_id in pinned:
            argv += ["-device", f"{device},addr={pinned[device_id]}"]
    for device_id, device in devices:
        if device_id not in pinned:
            argv += ["-device", device]
    return argv


def qemu_argv(
    plan: LaunchPlan,
    files: GuestFiles,
    *,
    qemu: str = "qemu-system-x86_64",
    incoming: bool = False,
    sandbox: bool = True,
) -> list[str]:
    argv = [
        *netns_prefix(plan.netns),
        qemu,
        "-name", f"guest={opt(plan.name)},debug-threads=on",
        "-uuid", plan.id,
        "-machine", plan.machine,
        "-accel", plan.accel,
        "-cpu", CPU_MODEL.get(plan.accel, "max"),
        "-smp", str(plan.vcpus),
        "-m", str(plan.ram_mb),
        "-nodefaults", "-no-user-config", "-display", "none",
        "-smbios",
        "type=1,manufacturer=OpenStack Foundation,product=OpenStack Nova,"
        f"family=Virtual Machine,serial={plan.id},uuid={plan.id}",
        "-chardev", f"socket,id=qmp,path={opt(str(files.qmp_socket))},server=on,wait=off",
        "-mon", "chardev=qmp,mode=control",
        "-chardev",
        f"socket,id=serial0,path={opt(str(files.serial_socket))},server=on,wait=off,"
        f"logfile={opt(str(files.console_log))},logappend=on",
        "-serial", "chardev:serial0",
        "-pidfile", str(files.pidfile),
        "-daemonize",
    ]  # fmt: skip
    if sandbox:
        argv += ["-sandbox", SANDBOX]
    devices = [("rng0", "virtio-rng-pci,id=rng0")]
    for disk in (*plan.disks, *plan.volumes):
        if disk.nbd is not None:
            argv += ["-object", json.dumps(tls_object(disk), separators=(",", ":"))]
        argv += ["-blockdev", blockdev(disk)]
        devices.append((f"{disk.node}-disk", disk_device(disk)))
    for index, nic in enumerate(plan.nics):
        argv += ["-netdev", f"tap,id=net{index},ifname={nic.tap},script=no,downscript=no"]
        devices.append(
            (f"nic{index}", f"virtio-net-pci,netdev=net{index},mac={nic.mac},id=nic{index}")
        )
    argv += device_args(devices, pci_addresses(plan))
    if plan.kernel is not None:
        argv += ["-kernel", plan.kernel]
        if plan.initrd is not None:
            argv += ["-initrd", plan.initrd]
        if plan.append:
            argv += ["-append", plan.append]
    if incoming:
        argv += ["-incoming", "defer"]
    return argv
