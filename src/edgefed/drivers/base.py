"""The seam between the compute service and a hypervisor.

A driver is told about one instance at a time and answers when the hypervisor has done
the work (``await driver.start(...)`` returns once the guest runs). It keeps no state
that matters: the compute service persists every server's state and, after a restart,
hands the live instances back with ``adopt`` so the driver can rebuild what it needs.
Errors are ``DriverError``; the compute service turns them into a server fault.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable


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


@dataclass(frozen=True, slots=True)
class InstanceSpec:
    """What a driver needs to run one server."""

    id: str
    name: str
    host: str
    vcpus: int
    ram_mb: int
    disk_gb: int
    image_id: str | None = None
    # The base image's data on this site, when there is any.
    image_path: Path | None = None
    user_data: str | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A server's disk: a file to copy (``path``) or bytes; None when the disk is empty."""

    path: Path | None = None
    data: bytes | None = None
    disk_format: str = "raw"


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

    async def close(self) -> None: ...
