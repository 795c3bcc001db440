"""What crosses from a site to its agent as JSON comes back as the same values: an
``InstanceSpec`` (with images, NICs, keys) and a host's network plan; a document that
is not one is refused before the agent acts on it."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from edgefed.drivers.base import DriverError, ImageData, InstanceSpec, NicSpec
from edgefed.drivers.hostnet import HostNetError, NetworkPlan, PortPlan, Rule, SitePlan, SubnetPlan
from edgefed.drivers.planwire import plan_from_json, plan_to_json
from edgefed.drivers.wire import instance_from_json, instance_to_json


def test_an_instance_spec_survives_the_wire() -> None:
    image = ImageData(
        id=str(uuid.uuid4()), disk_format="qcow2", container_format="bare",
        checksum="sha256:" + "ab" * 32, size=1234, path=Path("/var/lib/x/blob"),
    )  # fmt: skip
    spec = InstanceSpec(
        id=str(uuid.uuid4()), name="web", host="edge-1", vcpus=2, ram_mb=256, disk_gb=3,
        image_id=image.id, image_path=image.path, user_data="IyEvYmluL3NoCg==", root_gb=1,
        ephemeral_gb=2, swap_mb=64, image=image, kernel=ImageData(id="k"),
        kernel_cmdline="console=ttyS0",
        nics=(NicSpec(port_id="p", network_id="n", mac="fa:16:3e:00:00:01",
                      fixed_ips=("10.0.0.5",), cidr="10.0.0.0/24", gateway="10.0.0.1",
                      dns=("10.0.0.1",), mtu=1450),),
        public_keys={"k1": "ssh-ed25519 AAAA"}, metadata={"role": "web"}, hostname="web",
        project_id="p1", availability_zone="az1", launch_index=1, power_on=False,
    )  # fmt: skip
    assert instance_from_json(json.loads(json.dumps(instance_to_json(spec)))) == spec


def test_a_document_that_is_no_instance_is_refused() -> None:
    with pytest.raises(DriverError):
        instance_from_json({"id": "x"})
    with pytest.raises(DriverError):
        instance_from_json(["not", "an", "object"])


def test_a_network_plan_survives_the_wire() -> None:
    net, group = str(uuid.uuid4()), str(uuid.uuid4())
    plan = SitePlan(
        networks=(NetworkPlan(net, (SubnetPlan(str(uuid.uuid4()), "10.1.0.0/24", "10.1.0.1",
                                               dns_nameservers=("10.1.0.1",)),), mtu=1450),),
        ports=(PortPlan(str(uuid.uuid4()), net, "fa:16:3e:00:00:02", ("10.1.0.5",), "web",
                        (group,)),),
        groups={group: (Rule("ingress", protocol=6, port_range_min=80, port_range_max=80,
                             remote_ip_prefix="0.0.0.0/0"), Rule("egress"))},
        members={group: ("10.1.0.5",)},
    )  # fmt: skip
    assert plan_from_json(json.loads(json.dumps(plan_to_json(plan)))) == plan
    bad = plan_to_json(plan)
    bad["ports"][0]["mac"] = "not-a-mac"
    with pytest.raises(HostNetError):
        plan_from_json(bad)
