"""The seam between the compute service and a hypervisor.

A driver is told about one instance at a time and answers when the hypervisor has done
the work (``await driver.start(...)`` returns once the guest runs). It keeps no state
that matters: the compute service persists every server's state and, after a restart,
hands the live instances back with ``adopt`` so the driver can rebuild what it needs.
Errors are ``DriverError``; the compute service turns them into a server fault.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


class PowerState(enum.IntEnum):
    """Nova's power states, as ``OS-EXT-STS:power_state`` shows them."""

    NOSTATE = 0
    RUNNING = 1
    PAUSED = 3
    SHUTDOWN = 4
    CRASHED = 6
    SUSPENDED = 7


class DriverError(Exception):
    """The hypervisor could not do what it was asked."""


class HostUnavailable(DriverError):
    """The host that runs the instance did not answer: its agent is gone or too slow.

    Nothing is known of the guest then, unlike a ``DriverError`` that the hypervisor
    itself raised (which leaves the guest as it was)."""


# Told of a guest whose power state changed by itself (it powered off, crashed), or
# that a host reported after a restart: (instance id, its power state now).
PowerListener = Callable[[str, PowerState], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ImageData:
    """An image a guest boots from (its root disk, or a kernel or ramdisk of one)."""

    id: str
    disk_format: str | None = None
    container_format: str | None = None
    # "sha256:<hex>" of the data, which whoever copies it checks.
    checksum: str | None = None
    size: int | None = None
    # The data on the site's machine (an agent on that machine reads it there).
    path: Path | None = None


@dataclass(frozen=True, slots=True)
class NicSpec:
    """One port of the server, as the host wires it and the guest configures it."""

    port_id: str
    network_id: str
    mac: str
    fixed_ips: tuple[str, ...] = ()
    # The first IPv4 subnet of the port: its CIDR, gateway and name servers.
    cidr: str | None = None
    gateway: str | None = None
    dns: tuple[str, ...] = ()
    mtu: int = 1500


@dataclass(frozen=True, slots=True)
class VolumeDevice:
    """A volume to give a guest: a file on the site's machine (the volume service's
    connection), seen by the guest as a virtio disk whose serial is the volume id
    (its first 20 characters, as with Nova)."""

    volume_id: str
    path: Path
    disk_format: str = "raw"
    read_only: bool = False
    # A volume of another site: its NBD export over TLS (host, port, export,
    # tls_psk_identity, tls_psk_key), not a file here (``path`` is unused).
    nbd: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class InstanceSpec:
    """What a driver needs to run one server.

    The first fields are all the fake driver reads; a real hypervisor needs the rest:
    the flavor's disks, the images' data, the ports, and what the guest's config drive
    tells it (keys, user data, metadata).
    """

    id: str
    name: str
    host: str
    vcpus: int
    ram_mb: int
    disk_gb: int
    image_id: str | None = None
    # The base image's data on this site, when there is any.
    image_path: Path | None = None
    user_data: str | None = None  # base64, as the API keeps it
    root_gb: int = 0  # the flavor's root disk (0: the image's size)
    ephemeral_gb: int = 0
    swap_mb: int = 0
    image: ImageData | None = None
    kernel: ImageData | None = None  # the image's kernel_id: direct kernel boot
    ramdisk: ImageData | None = None  # its ramdisk_id
    kernel_cmdline: str | None = None  # its os_command_line
    nics: tuple[NicSpec, ...] = ()
    public_keys: Mapping[str, str] = field(default_factory=dict)
    metadata: Mapping[str, str] = field(default_factory=dict)
    hostname: str | None = None
    project_id: str = ""
    availability_zone: str = "nova"
    launch_index: int = 0
    # Boot from volume: the root disk is this volume, not a copy of ``image``.
    root_volume: VolumeDevice | None = None
    # The volumes attached to the server, given to the guest at its spawn.
    volumes: tuple[VolumeDevice, ...] = ()
    # False: the guest is made (its disks and all) but not started, as Nova's
    # finish_migration(power_on=False) leaves a stopped server that moved.
    power_on: bool = True


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A server's disk: a file to copy (``path``) or bytes; None when the disk is empty."""

    path: Path | None = None
    data: bytes | None = None
    # The data's format; None: the source image's (the fake's disk is that image).
    disk_format: str | None = None
    # The file was made for this snapshot: whoever copied it removes it.
    temporary: bool = False


@dataclass(frozen=True, slots=True)
class HypervisorInfo:
    hypervisor_type: str
    hypervisor_version: int
    host_ip: str
    # What ``openstack hypervisor show`` adds: the CPU model guests get and how they run
    # ("kvm" or "tcg" for QEMU; the driver's own word otherwise).
    cpu_model: str = "unknown"
    accel: str = "none"


@runtime_checkable
class ComputeDriver(Protocol):
    name: str

    async def spawn(self, spec: InstanceSpec) -> None: ...

    async def stop(self, instance_id: str) -> None: ...

    async def start(self, instance_id: str) -> None: ...

    async def reboot(self, instance_id: str, *, hard: bool) -> None: ...

    async def pause(self, instance_id: str) -> None: ...

    async def unpause(self, instance_id: str) -> None: ...

    async def suspend(self, instance_id: str) -> None: ...

    async def resume(self, instance_id: str) -> None: ...

    async def destroy(self, instance_id: str) -> None: ...

    async def snapshot(self, instance_id: str) -> Snapshot: ...

    # A mild relocation (services/compute/relocation_out.py): the disk is sent while
    # the guest runs, then only what it wrote meanwhile, once it is stopped.

    async def freeze_disk(self, instance_id: str) -> Snapshot:
        """While the guest runs: what its root disk holds now becomes a read-only layer,
        its next writes go to a new one on top (the guest does not notice); that frozen
        disk as one standalone file, as ``snapshot`` gives it. Asked again, the layer on
        top is frozen in turn (the new file holds it too)."""
        ...

    async def export_changes(self, instance_id: str) -> Snapshot:
        """The guest stopped: what it wrote since the last ``freeze_disk``, as a file
        ``join_layers`` puts on that frozen disk; the guest's own disk is one piece again
        (a start here runs it as it was). Asked again, the same."""
        ...

    async def join_layers(self, *, base: Path, changes: Path) -> None:
        """At the destination: ``changes`` (``export_changes``'s file) written into
        ``base`` (``freeze_disk``'s), which then holds the whole disk. Idempotent."""
        ...

    async def live_migrate(
        self, spec: InstanceSpec, *, source: str, resume: bool = False
    ) -> dict[str, float]:
        """Move the guest from host ``source`` to ``spec.host`` while it runs, its disks
        and memory with it; the move's figures (``downtime_ms``, ``total_ms``). A
        ``DriverError`` leaves the guest on ``source`` as it was, nothing of it on
        ``spec.host``. ``resume``: a move the service began before it restarted, taken
        up where the hosts are (finished where the guest arrived, else undone)."""
        ...

    async def attach_volume(self, instance_id: str, volume: VolumeDevice) -> None:
        """Give the guest the volume (hot-plugged when it runs, at its next start
        otherwise); nothing to do when it already has it."""
        ...

    async def detach_volume(self, instance_id: str, volume_id: str) -> None:
        """Take the volume from the guest once the guest released it; nothing to do
        when it does not have it."""
        ...

    def power_state(self, instance_id: str) -> PowerState: ...

    async def console_output(self, instance_id: str, *, lines: int | None = None) -> str:
        """The guest's serial console so far (the last ``lines`` lines when given)."""
        ...

    async def diagnostics(self, instance_id: str) -> dict[str, object]:
        """Nova's server diagnostics: state, CPU, memory, disks and NICs, as the driver knows."""
        ...

    def adopt(self, instances: Sequence[tuple[InstanceSpec, PowerState]]) -> None:
        """After a restart: the instances the service knows, in the state it recorded."""
        ...

    def hypervisor(self, host: str) -> HypervisorInfo: ...

    def watch_power(self, listener: PowerListener) -> None:
        """Call ``listener`` when a guest's power changes other than by an operation."""
        ...

    async def close(self) -> None: ...
