"""What the caller asks for: a guest (``GuestSpec``), its images, NICs and volumes.

Value objects only, frozen and checked on construction, so a bad request fails
before any file is made. The compute service's ``InstanceSpec`` carries less than a
real guest needs (NICs, keys, kernel images, ephemeral and swap sizes):
``GuestSpec.from_instance`` maps what it has and takes the rest as keywords.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgefed.drivers.base import InstanceSpec
from edgefed.drivers.qemu.configdrive import InstanceMetadata, NicConfig
from edgefed.drivers.qemu.errors import QemuError

# Nova's default for a kernel_id image without os_command_line
DEFAULT_KERNEL_CMDLINE = "root=/dev/vda console=tty0 console=ttyS0"
_TAP_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")  # IFNAMSIZ - 1, and nothing QEMU parses
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_NETNS = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_DEVICE_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,30}$")


def canonical_uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError as exc:
        raise QemuError(f"{value!r} is not a UUID") from exc


@dataclass(frozen=True, slots=True)
class ImageSource:
    """An image's data on this host, as the image service holds it."""

    path: Path
    checksum: str | None = None  # "sha256:<hex>", or Glance's bare MD5 / SHA-512 hex
    disk_format: str | None = None  # Glance's disk_format; None: read from the data


@dataclass(frozen=True, slots=True)
class Nic:
    """A NIC on a tap the caller made (``ip tuntap add``), in ``GuestSpec.netns``."""

    tap: str
    mac: str
    port_id: str = ""
    network_id: str = ""
    mtu: int = 1500
    address: str | None = None  # static IPv4 as CIDR for network_data.json; None: DHCP
    gateway: str | None = None
    dns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _TAP_NAME.match(self.tap):
            raise QemuError(f"{self.tap!r} is not a usable tap name")
        if not _MAC.match(self.mac):
            raise QemuError(f"{self.mac!r} is not a MAC address (lower-case, colons)")

    def config(self) -> NicConfig:
        return NicConfig(
            mac=self.mac,
            port_id=self.port_id,
            network_id=self.network_id,
            mtu=self.mtu,
            address=self.address,
            gateway=self.gateway,
            dns=self.dns,
        )


@dataclass(frozen=True, slots=True)
class BlockDevice:
    """A disk to hot-plug (a volume): a local raw or qcow2 file."""

    device_id: str  # QEMU's id for it, and the virtio serial the guest sees...
    path: Path
    disk_format: str = "raw"
    read_only: bool = False
    serial: str | None = None  # ...unless this is given (its first 20 characters)
    # A volume of another site instead of a file: its NBD export over TLS (host, port,
    # export, tls_psk_identity, tls_psk_key).
    nbd: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.nbd is not None:
            missing = {"host", "port", "export", "tls_psk_identity", "tls_psk_key"} - set(self.nbd)
            if missing:
                raise QemuError(f"the NBD volume {self.device_id} lacks {sorted(missing)}")
        if not _DEVICE_ID.match(self.device_id):
            raise QemuError(f"{self.device_id!r} is not a usable device id")
        if self.disk_format not in ("raw", "qcow2"):
            raise QemuError(f"volumes in {self.disk_format} format cannot be attached")


@dataclass(frozen=True, slots=True)
class GuestSpec:
    """One guest: flavor, images, NICs and what its config drive tells it."""

    id: str
    name: str
    vcpus: int
    ram_mb: int
    image: ImageSource | None  # None: boots from ``root_volume``
    root_gb: int = 0  # 0: the image's virtual size, as Nova does
    ephemeral_gb: int = 0
    swap_mb: int = 0
    kernel: ImageSource | None = None  # kernel_id's data: direct kernel boot
    ramdisk: ImageSource | None = None  # ramdisk_id's data
    kernel_cmdline: str | None = None  # the image's os_command_line
    nics: tuple[Nic, ...] = ()
    netns: str | None = None  # run QEMU in this network namespace (where the taps are)
    hostname: str | None = None
    project_id: str = ""
    availability_zone: str = "nova"
    launch_index: int = 0
    public_keys: Mapping[str, str] = field(default_factory=dict)
    meta: Mapping[str, str] = field(default_factory=dict)
    user_data: bytes | None = None
    vendor_data: Mapping[str, Any] = field(default_factory=dict)
    root_volume: BlockDevice | None = None  # boot from volume: the root disk itself
    volumes: tuple[BlockDevice, ...] = ()  # plugged from the start
    power_on: bool = True  # False: made (disks, config drive) but not started

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", canonical_uuid(self.id))
        if self.vcpus < 1 or self.ram_mb < 16:
            raise QemuError(
                f"a guest needs at least 1 vCPU and 16 MiB ({self.vcpus}, {self.ram_mb})"
            )
        if min(self.root_gb, self.ephemeral_gb, self.swap_mb) < 0:
            raise QemuError("disk sizes cannot be negative")
        if (self.image is None) == (self.root_volume is None):
            raise QemuError("a guest boots from an image or from a volume (one of them)")
        if self.ramdisk is not None and self.kernel is None:
            raise QemuError("a ramdisk image needs a kernel image")
        if self.netns is not None and not _NETNS.match(self.netns):
            raise QemuError(f"{self.netns!r} is not a usable network namespace name")

    @property
    def direct_kernel_boot(self) -> bool:
        return self.kernel is not None

    @property
    def append(self) -> str:
        """The kernel command line of a direct kernel boot."""
        return self.kernel_cmdline or DEFAULT_KERNEL_CMDLINE

    def metadata(self) -> InstanceMetadata:
        return InstanceMetadata(
            uuid=self.id,
            name=self.name,
            hostname=self.hostname or hostname_for(self.name),
            project_id=self.project_id,
            availability_zone=self.availability_zone,
            launch_index=self.launch_index,
            public_keys=self.public_keys,
            meta=self.meta,
            user_data=self.user_data,
            vendor_data=self.vendor_data,
        )

    @classmethod
    def from_instance(
        cls, instance: InstanceSpec, *, image: ImageSource | None = None, **extra: Any
    ) -> GuestSpec:
        """The compute service's spec, plus what only the QEMU driver needs."""
        if image is None:
            if instance.image_path is None:
                raise QemuError(f"server {instance.id} has no image data on this host")
            image = ImageSource(path=instance.image_path)
        return cls(
            id=instance.id,
            name=instance.name,
            vcpus=instance.vcpus,
            ram_mb=instance.ram_mb,
            root_gb=instance.disk_gb,
            image=image,
            user_data=decode_user_data(instance.user_data),
            **extra,
        )


def decode_user_data(user_data: str | None) -> bytes | None:
    """The API keeps user data base64-encoded, as Nova does; the guest gets the bytes."""
    if user_data is None:
        return None
    try:
        return base64.b64decode(user_data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise QemuError("the server's user data is not base64") from exc


def hostname_for(name: str) -> str:
    """Nova's sanitisation of a display name into a hostname."""
    host = re.sub(r"[^a-z0-9.-]+", "-", name.lower()).strip("-.")
    return host[:63] or "server"
