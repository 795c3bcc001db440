"""The config drive: what an unmodified cloud image reads at first boot.

cloud-init's OpenStack "ConfigDrive" datasource (and Ignition, and our tiny guest)
look for a file system labelled ``config-2`` holding Nova's metadata tree::

    openstack/<version>/meta_data.json      uuid, name, hostname, public_keys, keys,
                                            launch_index, availability_zone, project_id,
                                            meta, random_seed, devices
    openstack/<version>/user_data           the user's bytes as given (if any)
    openstack/<version>/vendor_data.json    from 2013-10-17
    openstack/<version>/network_data.json   from 2015-10-15: links, networks, services
    openstack/<version>/vendor_data2.json   from 2016-10-06
    ec2/2009-04-04/meta-data.json, ec2/latest/…   the EC2 view some images read

for each dated version and ``latest``; a reader takes the newest version it knows.
The ISO 9660 image (Rock Ridge and Joliet names, as Nova's ``genisoimage -J -r``
writes) is built in process with pycdlib: ~10 ms and no extra Debian package.
"""

from __future__ import annotations

import base64
import io
import ipaddress
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VOLUME_LABEL = "config-2"
VERSIONS = (
    "2012-08-10",
    "2013-04-04",
    "2013-10-17",
    "2015-10-15",
    "2016-06-30",
    "2016-10-06",
    "2017-02-22",
    "2018-08-27",
    "2020-10-14",
    "latest",
)
EC2_VERSIONS = ("2009-04-04", "latest")


@dataclass(frozen=True, slots=True)
class NicConfig:
    """What network_data.json says of one NIC (the guest matches it by MAC)."""

    mac: str
    port_id: str = ""
    network_id: str = ""
    mtu: int = 1500
    # a static IPv4 address as CIDR ("10.0.0.5/24"); None means DHCP
    address: str | None = None
    gateway: str | None = None
    dns: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class InstanceMetadata:
    """Everything the config drive tells the guest about itself."""

    uuid: str
    name: str
    hostname: str
    project_id: str = ""
    availability_zone: str = "nova"
    launch_index: int = 0
    public_keys: Mapping[str, str] = field(default_factory=dict)  # key name -> public key
    meta: Mapping[str, str] = field(default_factory=dict)
    user_data: bytes | None = None
    vendor_data: Mapping[str, Any] = field(default_factory=dict)


def meta_data(metadata: InstanceMetadata) -> dict[str, Any]:
    keys = dict(metadata.public_keys)
    return {
        "uuid": metadata.uuid,
        "name": metadata.name,
        "hostname": metadata.hostname,
        "launch_index": metadata.launch_index,
        "availability_zone": metadata.availability_zone,
        "project_id": metadata.project_id,
        "public_keys": keys,
        "keys": [{"name": name, "type": "ssh", "data": key} for name, key in keys.items()],
        "meta": dict(metadata.meta),
        "devices": [],
        "random_seed": base64.b64encode(os.urandom(512)).decode(),
    }


def network_data(nics: Sequence[NicConfig]) -> dict[str, Any]:
    """Nova's network_data.json: a link per NIC, a network per address (or DHCP)."""
    links: list[dict[str, Any]] = []
    networks: list[dict[str, Any]] = []
    dns: list[str] = []
    for index, nic in enumerate(nics):
        link_id = f"tap{(nic.port_id or str(index))[:11]}"
        links.append(
            {
                "id": link_id,
                "vif_id": nic.port_id,
                "type": "bridge",
                "ethernet_mac_address": nic.mac,
                "mtu": nic.mtu,
            }
        )
        network: dict[str, Any] = {
            "id": f"network{index}",
            "link": link_id,
            "network_id": nic.network_id,
        }
        if nic.address is None:
            network["type"] = "ipv4_dhcp"
        else:
            interface = ipaddress.IPv4Interface(nic.address)
            routes = []
            if nic.gateway:
                routes.append({"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": nic.gateway})  # noqa: S104
            network.update(
                type="ipv4",
                ip_address=str(interface.ip),
                netmask=str(interface.netmask),
                routes=routes,
                services=[{"type": "dns", "address": server} for server in nic.dns],
            )
        networks.append(network)
        dns.extend(server for server in nic.dns if server not in dns)
    return {
        "links": links,
        "networks": networks,
        "services": [{"type": "dns", "address": server} for server in dns],
    }


def tree(metadata: InstanceMetadata, nics: Sequence[NicConfig]) -> dict[str, bytes]:
    """Every file of the drive, by path."""
    files: dict[str, bytes] = {}
    meta = json.dumps(meta_data(metadata)).encode()
    network = json.dumps(network_data(nics)).encode()
    vendor = json.dumps(dict(metadata.vendor_data)).encode()
    for version in VERSIONS:
        base = f"openstack/{version}/"
        files[base + "meta_data.json"] = meta
        if metadata.user_data is not None:
            files[base + "user_data"] = metadata.user_data
        if version == "latest" or version >= "2013-10-17":
            files[base + "vendor_data.json"] = vendor
        if version == "latest" or version >= "2015-10-15":
            files[base + "network_data.json"] = network
        if version == "latest" or version >= "2016-10-06":
            files[base + "vendor_data2.json"] = b"{}"
    ec2 = json.dumps(
        {
            "instance-id": metadata.uuid,
            "hostname": metadata.hostname,
            "local-hostname": metadata.hostname,
            "ami-launch-index": metadata.launch_index,
            "placement": {"availability-zone": metadata.availability_zone},
            "public-keys": dict(metadata.public_keys),
        }
    ).encode()
    for version in EC2_VERSIONS:
        files[f"ec2/{version}/meta-data.json"] = ec2
        if metadata.user_data is not None:
            files[f"ec2/{version}/user-data"] = metadata.user_data
    return files


def write_iso(files: Mapping[str, bytes], target: Path) -> None:
    """An ISO 9660 image labelled ``config-2`` with ``files``, written atomically."""
    # Imported here: only a spawn writes a config drive, and an idle host agent (which
    # imports the driver) would otherwise keep pycdlib's modules resident.
    import pycdlib

    iso = pycdlib.PyCdlib()
    # interchange level 4 (ISO 9660:1999) takes lower-case names and the label as is
    iso.new(
        interchange_level=4,
        joliet=3,
        rock_ridge="1.09",
        vol_ident=VOLUME_LABEL,
        pub_ident_str="edgefed",
    )
    made: set[str] = set()
    for relative in sorted(files):
        parts = relative.split("/")
        for depth in range(1, len(parts)):
            directory = "/".join(parts[:depth])
            if directory not in made:
                made.add(directory)
                iso.add_directory(
                    "/" + directory, rr_name=parts[depth - 1], joliet_path="/" + directory
                )
        data = files[relative]
        iso.add_fp(
            io.BytesIO(data),
            len(data),
            "/" + relative,
            rr_name=parts[-1],
            joliet_path="/" + relative,
        )
    partial = target.with_name(f".{target.name}.partial")
    try:
        iso.write(str(partial))
        partial.replace(target)
    finally:
        iso.close()
        partial.unlink(missing_ok=True)


def build_config_drive(
    target: Path, metadata: InstanceMetadata, nics: Sequence[NicConfig] = ()
) -> None:
    write_iso(tree(metadata, nics), target)
