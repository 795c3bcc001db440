"""A site's networks on a host: namespace, bridges, taps, DHCP and security groups.

For the host agent, which runs the QEMU guests: it builds a ``SitePlan`` from what
the control plane says (networks, the ports on this host, their groups' rules and the
members of remote groups) and calls ``SiteNetwork.apply`` after every change;
``teardown`` removes everything the site made. Guests are started with
``SiteNetwork.exec_argv`` (QEMU opens the port's tap, ``PortPlan.tap``, by name).

The modules, from the top (each says why it is the way it is):

    site        SiteNetwork, HostNetSettings: apply a plan, tear down
    devices     the namespace, bridges and taps, through ``ip``
    dhcp        one dnsmasq per network, fixed addresses by MAC
    ruleset     security groups → one nftables transaction (pure)
    preflight   the tools and kernel features checked at start
    model       the plan's values; names: interface and nft names; run: subprocesses;
                errors: HostNetError

docs/network.md ("On the hosts") draws the layout and the rules.
"""

from edgefed.drivers.hostnet.errors import HostNetError
from edgefed.drivers.hostnet.model import (
    FirewallPlan,
    NetworkPlan,
    PortPlan,
    Rule,
    SitePlan,
    SubnetPlan,
)
from edgefed.drivers.hostnet.names import bridge_name, namespace_name, tap_name
from edgefed.drivers.hostnet.ruleset import render
from edgefed.drivers.hostnet.site import HostNetSettings, SiteNetwork

__all__ = [
    "FirewallPlan",
    "HostNetError",
    "HostNetSettings",
    "NetworkPlan",
    "PortPlan",
    "Rule",
    "SiteNetwork",
    "SitePlan",
    "SubnetPlan",
    "bridge_name",
    "namespace_name",
    "render",
    "tap_name",
]
