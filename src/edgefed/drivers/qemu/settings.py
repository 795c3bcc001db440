"""The hypervisor's settings: one frozen value, built once by the agent and passed in.

Every wait the driver makes has its bound here, so a stuck QEMU, guest or tool turns
into an error the service can show rather than a server left in a task state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from edgefed.drivers.base import PowerState

# Called on the event loop when a guest changes state by itself (it powered off,
# crashed, paused on an I/O error): (guest id, its power state now).
PowerListener = Callable[[str, PowerState], None]


@dataclass(frozen=True, slots=True)
class QemuSettings:
    qemu: str = "qemu-system-x86_64"
    qemu_img: str = "qemu-img"
    # "auto": probe KVM (accel.py); "kvm" or "tcg" to force one
    accel: Literal["auto", "kvm", "tcg"] = "auto"
    probe_deadline: float = 0.5
    machine: str = "pc"
    sandbox: bool = True
    # ACPI power-off before a hard one, as Nova's shutdown_timeout
    shutdown_timeout: float = 60.0
    launch_timeout: float = 30.0
    qmp_timeout: float = 10.0
    migrate_timeout: float = 300.0
    snapshot_timeout: float = 1800.0
    hotplug_timeout: float = 30.0
    # SIGTERM to SIGKILL, and a stopped QEMU's exit
    kill_grace: float = 5.0
    console_cap_bytes: int = 1024 * 1024
    # how often the console logs are checked against their cap
    maintenance_interval: float = 10.0
    host_ip: str = "127.0.0.1"
