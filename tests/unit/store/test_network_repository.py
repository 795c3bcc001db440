"""The network store's contracts: an address is never handed out twice (even to racing
requests), nothing in use is deleted, a network knows its subnets, and the defaults a
server gets ("auto") exist exactly once per project."""

from __future__ import annotations

import asyncio

import pytest
from network_support import network_with_subnet

from edgefed.core.errors import Conflict
from edgefed.store.engine import Store
from edgefed.store.network import (
    NetworkQuotas,
    NetworkRepository,
    Networks,
    NewPort,
    NewSubnet,
    Ports,
    SecurityGroups,
    Subnets,
)


def kind(exc: pytest.ExceptionInfo[Conflict]) -> str | None:
    return exc.value.details.get("kind")


async def test_ports_get_the_free_addresses_in_order_until_none_is_left(store: Store) -> None:
    network_id, subnet_id = await network_with_subnet(store)
    ports = Ports(store)
    made = [
        await ports.create(new=NewPort(network_id=network_id, project_id="alpha")) for _ in range(5)
    ]
    addresses = [p.fixed_ips[0].ip_address for p in made]
    assert addresses == [f"192.168.5.{i}" for i in range(2, 7)]
    assert {p.fixed_ips[0].subnet_id for p in made} == {subnet_id}
    with pytest.raises(Conflict) as exc:
        await ports.create(new=NewPort(network_id=network_id, project_id="alpha"))
    assert kind(exc) == "IpAddressGenerationFailure"
    # A deleted port gives its address back.
    assert await ports.delete(id=made[1].id)
    again = await ports.create(new=NewPort(network_id=network_id, project_id="alpha"))
    assert again.fixed_ips[0].ip_address == "192.168.5.3"


async def test_racing_ports_never_share_an_address(store: Store) -> None:
    network_id, _ = await network_with_subnet(store, "10.9.0.0/24")
    ports = Ports(store)
    made = await asyncio.gather(
        *(ports.create(new=NewPort(network_id=network_id, project_id="alpha")) for _ in range(20))
    )
    addresses = [p.fixed_ips[0].ip_address for p in made]
    assert len(set(addresses)) == 20


async def test_requested_addresses_are_checked_and_taken_once(store: Store) -> None:
    network_id, subnet_id = await network_with_subnet(store)
    ports = Ports(store)
    wanted = [{"subnet_id": subnet_id, "ip_address": "192.168.5.5"}]
    port = await ports.create(
        new=NewPort(network_id=network_id, project_id="alpha", requested_ips=wanted)
    )
    assert [ip.ip_address for ip in port.fixed_ips] == ["192.168.5.5"]
    with pytest.raises(Conflict) as exc:
        await ports.create(
            new=NewPort(network_id=network_id, project_id="alpha", requested_ips=wanted)
        )
    assert kind(exc) == "IpAddressAlreadyAllocated"
    with pytest.raises(Conflict) as exc:
        await ports.create(
            new=NewPort(network_id=network_id, project_id="alpha",
                        requested_ips=[{"subnet_id": subnet_id, "ip_address": "10.0.0.5"}])
        )  # fmt: skip
    assert kind(exc) == "InvalidIpForSubnet"
    with pytest.raises(Conflict) as exc:
        await ports.create(
            new=NewPort(network_id=network_id, project_id="alpha",
                        requested_ips=[{"ip_address": "10.0.0.5"}])
        )  # fmt: skip
    assert kind(exc) == "InvalidIpForNetwork"
    with pytest.raises(ValueError):
        await ports.create(
            new=NewPort(network_id=network_id, project_id="alpha",
                        requested_ips=[{"ip_address": "not-an-ip"}])
        )  # fmt: skip
    # The failed attempts left nothing behind: the port and its address are the only ones.
    assert [p.id for p in await ports.list(filters={"network_id": network_id})] == [port.id]


async def test_a_network_knows_its_subnets_and_keeps_what_is_in_use(store: Store) -> None:
    network_id, subnet_id = await network_with_subnet(store)
    networks, subnets, ports = Networks(store), Subnets(store), Ports(store)
    second = await subnets.create(
        new=NewSubnet(network_id=network_id, project_id="alpha", cidr="192.168.6.0/29",
                      ip_version=4, gateway_ip=None, allocation_pools=[])
    )  # fmt: skip
    found = await networks.get(id=network_id)
    assert found is not None and found.subnet_ids == (subnet_id, second.id)
    listed = {n.id: n.subnet_ids for n in await networks.list()}
    assert listed == {network_id: (subnet_id, second.id)}
    plugged = await ports.create(
        new=NewPort(
            network_id=network_id, project_id="alpha", device_id="vm", device_owner="compute:nova"
        )
    )
    with pytest.raises(Conflict) as exc:
        await subnets.delete(id=subnet_id)
    assert kind(exc) == "SubnetInUse"
    with pytest.raises(Conflict) as exc:
        await networks.delete(id=network_id)
    assert kind(exc) == "NetworkInUse"
    # An unused subnet goes; once the server's port is gone the network goes, with its
    # ownerless ports.
    assert await subnets.delete(id=second.id)
    await ports.create(new=NewPort(network_id=network_id, project_id="alpha"))
    await ports.delete_of_device("vm")
    assert await ports.get(id=plugged.id) is None
    assert await networks.delete(id=network_id)
    assert await subnets.get(id=subnet_id) is None
    assert await ports.list() == []
    assert not await networks.delete(id=network_id)


async def test_the_auto_network_exists_once_per_project(store: Store) -> None:
    repo = NetworkRepository(store)
    # Servers booted at once into a project without a network make one between them.
    made = await asyncio.gather(*(repo.ensure_default_network("alpha") for _ in range(5)))
    assert len({n.id for n in made}) == 1
    assert len(await Networks(store).list(filters={"project_id": "alpha"})) == 1
    first = await repo.ensure_default_network("alpha")
    again = await repo.ensure_default_network("alpha")
    assert again.id == first.id and first.is_default and len(first.subnet_ids) == 1
    other = await repo.ensure_default_network("beta")
    assert other.id != first.id
    # A project's network with a subnet serves when it has no default one.
    network_id, _ = await network_with_subnet(store)
    assert (await Networks(store).project_default("alpha")).id == first.id  # type: ignore[union-attr]
    assert await Networks(store).project_default("gamma") is None
    port = await repo.create_port(network=first, project_id="alpha", device_id="vm-1")
    assert [p.id for p in await repo.list_ports(device_id="vm-1")] == [port.id]
    await repo.delete_ports_of_device("vm-1")
    assert await repo.get_port(port.id) is None
    assert network_id != first.id


async def test_one_default_security_group_per_project_even_when_asked_at_once(store: Store) -> None:
    groups = SecurityGroups(store)
    made = await asyncio.gather(*(groups.ensure_default("alpha") for _ in range(5)))
    assert len({g.id for g in made}) == 1
    assert [g.name for g in await SecurityGroups(store, ensure_for="beta").list()] == [
        "default",
        "default",
    ]
    rules = made[0].rules
    assert {(r.direction, r.ethertype) for r in rules} == {
        ("egress", "IPv4"), ("egress", "IPv6"), ("ingress", "IPv4"), ("ingress", "IPv6"),
    }  # fmt: skip


async def test_quotas_keep_what_was_set_until_reset(store: Store) -> None:
    quotas = NetworkQuotas(store)
    await quotas.set_limits("alpha", {"network": 3, "port": 10})
    await quotas.set_limits("alpha", {"network": 4})
    assert await quotas.limits("alpha") == {"network": 4, "port": 10}
    assert await quotas.limits("beta") == {}
    await network_with_subnet(store)
    assert await quotas.usage("alpha") == {
        "network": 1,
        "subnet": 1,
        "port": 0,
        "security_group": 0,
        "security_group_rule": 0,
    }
    await quotas.reset("alpha")
    assert await quotas.limits("alpha") == {}
