"""Networks the store's network tests build on."""

from __future__ import annotations

from edgefed.store.engine import Store
from edgefed.store.network import Networks, NewNetwork, NewSubnet, Subnets, default_pools


async def network_with_subnet(
    store: Store, cidr: str = "192.168.5.0/29", *, project_id: str = "alpha"
) -> tuple[str, str]:
    """A network of ``project_id`` with one IPv4 subnet of ``cidr``: their ids."""
    network = await Networks(store).create(new=NewNetwork(name="n", project_id=project_id))
    gateway = cidr.rsplit(".", 1)[0] + ".1"
    subnet = await Subnets(store).create(
        new=NewSubnet(
            network_id=network.id,
            project_id=project_id,
            cidr=cidr,
            ip_version=4,
            gateway_ip=gateway,
            allocation_pools=default_pools(cidr, gateway),
        )
    )
    return network.id, subnet.id
