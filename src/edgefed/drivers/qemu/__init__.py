"""Real guests under QEMU, for the host agent: ``QemuHypervisor`` and what it takes.

The modules, from the top (each says why it is the way it is):

    hypervisor   QemuHypervisor: the driver's operations by instance id, adoption
    guest        one guest's lifecycle over QMP; transfer: suspend, resume, snapshot,
                 hot-plug; relay: unix sockets relayed to NBD exports for guests in a
                 network namespace
    cmdline      QEMU's command line from a persisted LaunchPlan
    process      -daemonize, the locked pidfile, pidfds; console: the capped log;
                 diagnostics: Nova's counters
    images       qemu-img checks and the base image cache; disks: overlays, ephemeral,
                 swap, standalone copies; configdrive: the config-2 ISO
    accel        the KVM probe and the host's facts; qmp: the monitor client
    spec, settings, layout, errors, tools: values, paths, the error tree, subprocesses

docs/qemu.md describes what runs where and the files of a guest.
"""

from edgefed.drivers.qemu.accel import HostFacts, ProbeResult
from edgefed.drivers.qemu.configdrive import InstanceMetadata, NicConfig
from edgefed.drivers.qemu.errors import (
    GuestNotFound,
    ImageRefused,
    InvalidGuestState,
    LaunchFailed,
    QemuError,
    QmpDisconnected,
    QmpError,
    QmpTimeout,
    ToolFailed,
)
from edgefed.drivers.qemu.hypervisor import QemuHypervisor
from edgefed.drivers.qemu.settings import PowerListener, QemuSettings
from edgefed.drivers.qemu.spec import BlockDevice, GuestSpec, ImageSource, Nic

__all__ = [
    "BlockDevice",
    "GuestNotFound",
    "GuestSpec",
    "HostFacts",
    "ImageRefused",
    "ImageSource",
    "InstanceMetadata",
    "InvalidGuestState",
    "LaunchFailed",
    "Nic",
    "NicConfig",
    "PowerListener",
    "ProbeResult",
    "QemuError",
    "QemuHypervisor",
    "QemuSettings",
    "QmpDisconnected",
    "QmpError",
    "QmpTimeout",
    "ToolFailed",
]
