"""What a host wires for its guests, read from the site's store: a ``hostnet`` plan.

The ports of the live servers placed on the host (and of a server live-migrating to
it: its guest's taps must be there before it arrives), their networks and subnets, the
rules of their security groups and the members of the groups those rules name (across
the site), and the servers' names for DHCP. The agent asks for it before a spawn and
whenever it looks again (a rule changed); applying it is idempotent on the host.
"""

from __future__ import annotations

from edgefed.drivers.hostnet.from_store import network_plan, site_plan
from edgefed.drivers.hostnet.model import SitePlan
from edgefed.store.compute import ServerRecord, ServerRepository
from edgefed.store.engine import Store
from edgefed.store.network import NetworkRepository
from edgefed.store.network.networks import Subnets


async def host_plan(store: Store, hostname: str) -> SitePlan:
    servers = [
        s for s in await ServerRepository(store).list_all(project_id=None)
        if s.host == hostname or _arriving(s, hostname)
    ]  # fmt: skip
    names = {s.id: s.name for s in servers}
    repo = NetworkRepository(store)
    view = await repo.port_security(device_ids=sorted(names))
    network_ids = sorted({p.network_id for p in view.ports})
    subnets = list(await Subnets(store).list(filters={"network_id": network_ids}))
    networks = []
    for network_id in network_ids:
        network = await repo.get_network(network_id)
        if network is not None:
            networks.append(network_plan(network, subnets))
    return site_plan(view, networks, names=names)


def _arriving(server: ServerRecord, hostname: str) -> bool:
    """A live migration to ``hostname`` under way (services/compute/moves.py)."""
    migration = server.migration or {}
    return server.task_state == "migrating" and migration.get("destination") == hostname
