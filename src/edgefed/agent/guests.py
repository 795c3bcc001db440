"""What the agent does with a command: ``GuestRunner`` runs it on this host.

Guests run under QEMU (``drivers.qemu.QemuHypervisor``), their ports are taps on the
site's bridges (``drivers.hostnet.SiteNetwork``): a spawn first makes the host's
network match the site's plan (the new server's ports are in it), then starts QEMU in
the site's namespace, next to its taps. Every command is idempotent, because an agent
that restarted is sent again what it had not answered: a spawn of a guest that runs
attaches to it, a destroy of one that is gone does nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from edgefed.drivers.base import ImageData, InstanceSpec, NicSpec, PowerState, VolumeDevice
from edgefed.drivers.hostnet import SiteNetwork, tap_name
from edgefed.drivers.qemu import BlockDevice, GuestSpec, ImageSource, Nic, QemuHypervisor
from edgefed.drivers.qemu.live import MigrationKey
from edgefed.drivers.qemu.spec import decode_user_data
from edgefed.drivers.wire import instance_from_json, volume_from_json

log = logging.getLogger("edgefed.agent.guests")

KINDS = (
    "spawn",
    "stop",
    "start",
    "reboot",
    "pause",
    "unpause",
    "suspend",
    "resume",
    "destroy",
    "snapshot",
    "freeze_disk",
    "export_changes",
    "console",
    "diagnostics",
    "attach_volume",
    # a live migration (drivers/qemu/live.py): the source names its devices' PCI
    # addresses, the destination receives, the source sends, the destination settles;
    # the source recovers when that failed
    "live_devices",
    "live_receive",
    "live_send",
    "live_settle",
    "live_recover",
    "detach_volume",
)


class CommandRefused(Exception):
    """A command this agent does not know, or whose payload it cannot use."""


def guest_nic(nic: NicSpec) -> Nic:
    address = None
    for ip in nic.fixed_ips:
        if ipaddress.ip_address(ip).version == 4 and nic.cidr is not None:
            prefix = ipaddress.ip_network(nic.cidr, strict=False).prefixlen
            address = f"{ip}/{prefix}"
            break
    return Nic(
        tap=tap_name(nic.port_id),
        mac=nic.mac,
        port_id=nic.port_id,
        network_id=nic.network_id,
        mtu=nic.mtu,
        address=address,
        gateway=nic.gateway,
        dns=nic.dns,
    )


def volume_node(volume_id: str) -> str:
    """QEMU's name for a volume's disk (a letter, then at most 30 more characters)."""
    return "v" + volume_id.replace("-", "")[:30]


def block_device(volume: VolumeDevice) -> BlockDevice:
    """A volume as QEMU's disk: its serial, as the guest sees it, is the volume id."""
    if volume.nbd is None and not os.access(volume.path, os.R_OK):
        raise CommandRefused(
            f"volume {volume.volume_id} is not on this host ({volume.path} cannot be read)"
        )
    return BlockDevice(
        device_id=volume_node(volume.volume_id),
        path=volume.path,
        disk_format=volume.disk_format,
        read_only=volume.read_only,
        serial=volume.volume_id,
        nbd=volume.nbd,
    )


def guest_spec(spec: InstanceSpec, *, netns: str | None) -> GuestSpec:
    """The compute service's spec as QEMU's: images from their data on this machine."""
    image = spec.image
    root_volume = block_device(spec.root_volume) if spec.root_volume is not None else None
    if root_volume is None and (image is None or image.path is None):
        raise CommandRefused(f"server {spec.id} has no image data this host can read")
    kernel = ramdisk = None
    if spec.kernel is not None and spec.kernel.path is not None:
        kernel = ImageSource(path=spec.kernel.path, checksum=spec.kernel.checksum)
    if spec.ramdisk is not None and spec.ramdisk.path is not None:
        ramdisk = ImageSource(path=spec.ramdisk.path, checksum=spec.ramdisk.checksum)
    return GuestSpec(
        id=spec.id,
        name=spec.name,
        vcpus=spec.vcpus,
        ram_mb=spec.ram_mb,
        image=(
            ImageSource(path=image.path, checksum=image.checksum, disk_format=image.disk_format)
            if root_volume is None and image is not None and image.path is not None
            else None
        ),
        root_volume=root_volume,
        volumes=tuple(block_device(v) for v in spec.volumes),
        root_gb=spec.root_gb,
        ephemeral_gb=spec.ephemeral_gb,
        swap_mb=spec.swap_mb,
        kernel=kernel,
        ramdisk=ramdisk,
        kernel_cmdline=spec.kernel_cmdline,
        nics=tuple(guest_nic(n) for n in spec.nics),
        netns=netns if spec.nics else None,
        hostname=spec.hostname,
        project_id=spec.project_id,
        availability_zone=spec.availability_zone,
        launch_index=spec.launch_index,
        public_keys=dict(spec.public_keys),
        meta=dict(spec.metadata),
        user_data=decode_user_data(spec.user_data),
        power_on=spec.power_on,
    )


class GuestRunner:
    def __init__(
        self,
        hypervisor: QemuHypervisor,
        *,
        network: SiteNetwork | None,
        sync_network: Callable[[], Awaitable[None]],
        fetch_image: Callable[[ImageData], Awaitable[Path]] | None = None,
        export_volume: Callable[[str, str], Awaitable[Mapping[str, Any]]] | None = None,
        site_files: bool = True,
    ) -> None:
        self.hv = hypervisor
        self.network = network
        self.sync_network = sync_network
        self.fetch_image = fetch_image
        self.export_volume = export_volume
        # False: never read the site's files, even where the path resolves (a host that
        # shares the path with the site but not its data, or a test standing in for
        # another machine): images are fetched, volumes reached over NBD.
        self.site_files = site_files

    def _readable(self, path: Path) -> bool:
        return self.site_files and os.access(path, os.R_OK)

    async def _local(self, image: ImageData | None, fetched: list[Path]) -> ImageData | None:
        """The image with its data on this machine: the site's file when this host can
        read it (an agent on the site's machine), else a copy fetched from the site."""
        if image is None or (image.path is not None and self._readable(image.path)):
            return image
        if self.fetch_image is None:
            raise CommandRefused(f"image {image.id} has no data this host can read")
        path = await self.fetch_image(image)
        fetched.append(path)
        return dataclasses.replace(image, path=path)

    async def _reachable(self, server_id: str, volume: VolumeDevice) -> VolumeDevice:
        """The volume as this host reaches it: its file when this host can read it (an
        agent on the site's machine), else the NBD export the site makes for it."""
        if volume.nbd is not None or self._readable(volume.path):
            return volume
        if self.export_volume is None:
            raise CommandRefused(
                f"volume {volume.volume_id} is not on this host ({volume.path} cannot be read)"
            )
        nbd = await self.export_volume(server_id, volume.volume_id)
        return dataclasses.replace(volume, nbd=dict(nbd))

    async def _spawn(
        self,
        spec: InstanceSpec,
        *,
        arriving: tuple[MigrationKey, str, dict[str, str]] | None = None,
    ) -> dict[str, Any]:
        """The guest made and started; ``arriving`` (the migration's key, the address
        to listen on, the source's devices' PCI addresses): made the same way, its QEMU
        waiting for a live migration. Its volumes are opened as at a spawn (the file,
        or the attachment's NBD export, which the site grants this host for the move)."""
        fetched: list[Path] = []
        try:
            root = spec.root_volume
            spec = dataclasses.replace(
                spec,
                image=await self._local(spec.image, fetched),
                kernel=await self._local(spec.kernel, fetched),
                ramdisk=await self._local(spec.ramdisk, fetched),
                root_volume=await self._reachable(spec.id, root) if root is not None else None,
                volumes=tuple([await self._reachable(spec.id, v) for v in spec.volumes]),
            )
            if spec.nics:
                await self.sync_network()
            netns = self.network.namespace if self.network is not None else None
            if arriving is not None:
                key, address, pci = arriving
                incoming = await self.hv.receive(
                    guest_spec(spec, netns=netns), key=key, address=address, pci=pci
                )
                return {"nbd_port": incoming.nbd_port, "migration_port": incoming.migration_port}
            await self.hv.spawn(guest_spec(spec, netns=netns))
            return {}
        finally:
            # The hypervisor keeps its own checked copy in its image cache.
            for path in fetched:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    async def adopt(self) -> dict[str, PowerState]:
        """Attach to the guests a previous run left (running or not)."""
        return await self.hv.adopt()

    def facts(self) -> dict[str, Any]:
        facts = self.hv.facts
        return {
            "hypervisor_type": facts.hypervisor_type,
            "hypervisor_version": facts.hypervisor_version,
            "cpu_model": facts.cpu_model,
            "accel": facts.accel,
            "host_ip": self.hv.settings.host_ip,
        }

    async def run(
        self, kind: str, server_id: str | None, payload: Mapping[str, Any]
    ) -> dict[str, Any]:
        if kind not in KINDS:
            raise CommandRefused(f"this agent does not know the command {kind!r}")
        if kind == "spawn":
            spec = instance_from_json(payload.get("instance"))
            await self._spawn(spec)
            return {"power_state": int(self.hv.power_state(spec.id))}
        if server_id is None:
            raise CommandRefused(f"a {kind} command names no server")
        if kind.startswith("live_"):
            return await self._live(kind, server_id, payload)
        if kind == "destroy":
            await self.hv.destroy(server_id)
            return {}
        if kind == "reboot":
            await self.hv.reboot(server_id, hard=bool(payload.get("hard")))
        elif kind in ("snapshot", "freeze_disk", "export_changes"):
            snap = await getattr(self.hv, kind)(server_id)
            return {"path": str(snap.path), "disk_format": snap.disk_format}
        elif kind == "console":
            lines = payload.get("lines")
            output = self.hv.console_output(server_id, lines=int(lines) if lines else None)
            return {"output": output}
        elif kind == "diagnostics":
            return {"diagnostics": await self.hv.diagnostics(server_id)}
        elif kind == "attach_volume":
            volume = await self._reachable(server_id, volume_from_json(payload.get("volume")))
            await self.hv.attach_block(server_id, block_device(volume))
        elif kind == "detach_volume":
            volume_id = payload.get("volume_id")
            if not isinstance(volume_id, str) or not volume_id:
                raise CommandRefused("a detach_volume command names no volume")
            await self.hv.detach_block(server_id, volume_node(volume_id))
        else:
            await getattr(self.hv, kind)(server_id)
        return {"power_state": int(self.hv.power_state(server_id))}

    async def _live(self, kind: str, server_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """A live migration's step on this host (the site runs them in order)."""
        if kind == "live_recover":
            await self.hv.recover(server_id, was_running=payload.get("was_running") is not False)
            return {"power_state": int(self.hv.power_state(server_id))}
        if kind == "live_settle":
            return {"power_state": int(await self.hv.settle(server_id))}
        if kind == "live_devices":
            return {"pci": await self.hv.devices(server_id)}
        raw, address = payload.get("key"), payload.get("address")
        if not isinstance(raw, dict) or not isinstance(address, str) or not address:
            raise CommandRefused(f"a {kind} command needs the migration's key and address")
        key = MigrationKey(identity=str(raw.get("identity")), key=str(raw.get("key")))
        if kind == "live_receive":
            spec = instance_from_json(payload.get("instance"))
            if spec.id != server_id:
                raise CommandRefused("a live_receive command names another server's spec")
            raw_pci = payload.get("pci")
            pci = {str(k): str(v) for k, v in raw_pci.items()} if isinstance(raw_pci, dict) else {}
            return await self._spawn(spec, arriving=(key, address, pci))
        return await self.hv.send(
            server_id, key=key, address=address,
            nbd_port=int(payload.get("nbd_port") or 0),
            migration_port=int(payload.get("migration_port") or 0),
        )  # fmt: skip
