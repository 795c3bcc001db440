"""The config drive reads back as cloud-init's OpenStack datasource expects it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pycdlib
import pytest

from edgefed.drivers.qemu.configdrive import (
    VERSIONS,
    InstanceMetadata,
    NicConfig,
    build_config_drive,
)

UUID = "0f5e7a0e-3a1b-4c8f-9a61-2f0d2b8f1c11"


def read_iso(path: Path) -> tuple[str, dict[str, bytes]]:
    """The volume label and every file, by its Rock Ridge path (what Linux shows)."""
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        label = iso.pvd.volume_identifier.decode().strip()
        files: dict[str, bytes] = {}
        for root, _dirs, names in iso.walk(rr_path="/"):
            for name in names:
                out = io.BytesIO()
                iso.get_file_from_iso_fp(out, rr_path=f"{root.rstrip('/')}/{name}")
                files[f"{root.rstrip('/')}/{name}".lstrip("/")] = out.getvalue()
    finally:
        iso.close()
    return label, files


@pytest.fixture
def metadata() -> InstanceMetadata:
    return InstanceMetadata(
        uuid=UUID,
        name="web 1",
        hostname="web-1",
        project_id="p1",
        availability_zone="edge-az",
        launch_index=2,
        public_keys={"mykey": "ssh-ed25519 AAAAC3Nza test@edgefed"},
        meta={"role": "web"},
        user_data=b"#!/bin/sh\necho USERDATA-MARKER\n\x00\xff binary is kept",
    )


def test_the_drive_is_labelled_config_2_with_every_version(
    tmp_path: Path, metadata: InstanceMetadata
) -> None:
    build_config_drive(tmp_path / "config.iso", metadata)
    label, files = read_iso(tmp_path / "config.iso")
    assert label == "config-2"
    for version in VERSIONS:
        assert f"openstack/{version}/meta_data.json" in files
        assert files[f"openstack/{version}/user_data"] == metadata.user_data
    assert "openstack/2012-08-10/network_data.json" not in files  # newer than that version
    assert "openstack/2015-10-15/network_data.json" in files
    assert "openstack/2016-10-06/vendor_data2.json" in files
    assert json.loads(files["ec2/latest/meta-data.json"])["instance-id"] == UUID


def test_meta_data_carries_what_cloud_init_reads(
    tmp_path: Path, metadata: InstanceMetadata
) -> None:
    build_config_drive(tmp_path / "config.iso", metadata)
    _, files = read_iso(tmp_path / "config.iso")
    meta = json.loads(files["openstack/latest/meta_data.json"])
    assert meta["uuid"] == UUID
    assert (meta["name"], meta["hostname"]) == ("web 1", "web-1")
    assert meta["public_keys"] == {"mykey": "ssh-ed25519 AAAAC3Nza test@edgefed"}
    assert meta["keys"] == [
        {"name": "mykey", "type": "ssh", "data": "ssh-ed25519 AAAAC3Nza test@edgefed"}
    ]
    assert (meta["launch_index"], meta["availability_zone"]) == (2, "edge-az")
    assert (meta["project_id"], meta["meta"]) == ("p1", {"role": "web"})
    assert len(meta["random_seed"]) > 600


def test_no_user_data_means_no_user_data_file(tmp_path: Path) -> None:
    build_config_drive(tmp_path / "c.iso", InstanceMetadata(uuid=UUID, name="a", hostname="a"))
    _, files = read_iso(tmp_path / "c.iso")
    assert not [name for name in files if name.endswith(("user_data", "user-data"))]
    assert json.loads(files["openstack/latest/vendor_data.json"]) == {}


def test_network_data_says_static_or_dhcp_per_nic(
    tmp_path: Path, metadata: InstanceMetadata
) -> None:
    nics = [
        NicConfig(
            mac="fa:16:3e:00:00:01",
            port_id="port-aaaa-1",
            network_id="net-1",
            address="192.0.2.10/24",
            gateway="192.0.2.1",
            dns=("192.0.2.53",),
        ),
        NicConfig(mac="fa:16:3e:00:00:02", port_id="port-bbbb-2", network_id="net-2", mtu=1450),
    ]
    build_config_drive(tmp_path / "config.iso", metadata, nics)
    _, files = read_iso(tmp_path / "config.iso")
    network = json.loads(files["openstack/latest/network_data.json"])
    static, dhcp = network["networks"]
    assert network["links"][0]["ethernet_mac_address"] == "fa:16:3e:00:00:01"
    assert network["links"][1]["mtu"] == 1450
    assert static["link"] == network["links"][0]["id"]
    assert (static["type"], static["ip_address"], static["netmask"]) == (
        "ipv4",
        "192.0.2.10",
        "255.255.255.0",
    )
    assert static["routes"] == [
        {"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "192.0.2.1"}
    ]
    assert dhcp == {"id": "network1", "link": network["links"][1]["id"], "network_id": "net-2",
                    "type": "ipv4_dhcp"}  # fmt: skip
    assert network["services"] == [{"type": "dns", "address": "192.0.2.53"}]


def test_the_drive_replaces_an_old_one_whole(tmp_path: Path, metadata: InstanceMetadata) -> None:
    target = tmp_path / "config.iso"
    target.write_bytes(b"old")
    build_config_drive(target, metadata)
    assert read_iso(target)[0] == "config-2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.iso"]
