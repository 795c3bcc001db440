"""What a driver is told about a server: its ``InstanceSpec``, from the store's records.

Everything a real guest needs, read where the server was built: the flavor's disks as
they were at boot, the image's data (its blob on this site, with the sha256 the copy
is checked against) and, for an image that names them, its ``kernel_id`` and
``ramdisk_id`` images and ``os_command_line``; the server's ports with their MAC,
fixed IPs and the IPv4 subnet's gateway and name servers; the key pair, user data,
metadata and hostname its config drive carries; its volumes' connections.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from edgefed.drivers.base import ImageData, InstanceSpec, NicSpec, VolumeDevice
from edgefed.store.compute import ServerRecord, mappings_of
from edgefed.store.image import ImageRecord, ImageRepository, blob_path
from edgefed.store.network import NetworkRepository
from edgefed.store.network.networks import Subnets


def image_data(data_dir: Path, image: ImageRecord) -> ImageData:
    return ImageData(
        id=image.id,
        disk_format=image.disk_format,
        container_format=image.container_format,
        checksum=f"sha256:{image.blob_sha256}" if image.blob_sha256 else None,
        size=image.size,
        path=blob_path(data_dir, image) if image.blob_sha256 else None,
    )


async def _related(
    images: ImageRepository, data_dir: Path, image: ImageRecord | None, key: str
) -> ImageData | None:
    ref = (image.properties if image is not None else {}).get(key)
    if not isinstance(ref, str) or not ref:
        return None
    found = await images.get(ref)
    return image_data(data_dir, found) if found is not None and found.blob_sha256 else None


def volume_devices(server: ServerRecord) -> list[tuple[bool, VolumeDevice]]:
    """The server's connected volumes: (is it the root disk, the device)."""
    return [
        (
            mapping.boot_index == 0,
            VolumeDevice(
                volume_id=mapping.volume_id,
                path=Path(mapping.path or ""),
                disk_format=mapping.disk_format,
                read_only=mapping.read_only,
                nbd=mapping.nbd,
            ),
        )
        for mapping in mappings_of(server.volumes)
        if mapping.path is not None or mapping.nbd is not None
    ]


async def nics_of(networks: NetworkRepository, server_id: str) -> tuple[NicSpec, ...]:
    subnets = Subnets(networks.store)
    nics = []
    for port in await networks.list_ports(device_id=server_id):
        network = await networks.get_network(port.network_id)
        ips = tuple(f.ip_address for f in port.fixed_ips)
        cidr = gateway = None
        dns: tuple[str, ...] = ()
        for fixed in port.fixed_ips:
            if ipaddress.ip_address(fixed.ip_address).version != 4:
                continue
            subnet = await subnets.get(id=fixed.subnet_id)
            if subnet is not None:
                cidr, gateway, dns = subnet.cidr, subnet.gateway_ip, tuple(subnet.dns_nameservers)
                break
        nics.append(
            NicSpec(
                port_id=port.id,
                network_id=port.network_id,
                mac=port.mac_address.lower(),
                fixed_ips=ips,
                cidr=cidr,
                gateway=gateway,
                dns=dns,
                mtu=network.mtu if network is not None else 1500,
            )
        )
    return tuple(nics)


async def instance_spec(
    server: ServerRecord,
    *,
    images: ImageRepository,
    networks: NetworkRepository,
    data_dir: Path,
) -> InstanceSpec:
    assert server.host is not None
    image = await images.get(server.image_id) if server.image_id else None
    # The root disk's own image (a shelved, resized or migrated disk) when it has one;
    # the kernel, ramdisk and command line stay those of the image it was booted from.
    root = await images.get(server.root_image_id) if server.root_image_id else image
    data = image_data(data_dir, root) if root is not None and root.blob_sha256 else None
    flavor = server.flavor or {}
    properties = image.properties if image is not None else {}
    cmdline = properties.get("os_command_line")
    keys = {server.key_name: server.key_data} if server.key_name and server.key_data else {}
    volumes = volume_devices(server)
    return InstanceSpec(
        id=server.id,
        name=server.name,
        host=server.host,
        vcpus=server.vcpus,
        ram_mb=server.ram,
        disk_gb=server.disk,
        image_id=root.id if root is not None else server.image_id,
        image_path=data.path if data is not None else None,
        user_data=server.user_data,
        root_gb=int(flavor.get("disk", server.disk) or 0),
        ephemeral_gb=int(flavor.get("ephemeral") or 0),
        swap_mb=int(flavor.get("swap") or 0),
        image=data,
        kernel=await _related(images, data_dir, image, "kernel_id"),
        ramdisk=await _related(images, data_dir, image, "ramdisk_id"),
        kernel_cmdline=cmdline if isinstance(cmdline, str) else None,
        nics=await nics_of(networks, server.id),
        public_keys=keys,
        metadata=dict(server.metadata),
        hostname=server.hostname,
        project_id=server.project_id,
        availability_zone=server.availability_zone or "nova",
        launch_index=server.launch_index,
        root_volume=next((v for boot, v in volumes if boot), None),
        volumes=tuple(v for boot, v in volumes if not boot),
    )
