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

A site with the qemu driver imports the plan's side (``model``, ``from_store``) to tell
its agents what to wire; ``site`` and ``ruleset``, which wire it (with ``devices``,
``dhcp``, ``preflight`` and ``run``), are the agent's, imported on first use of a name
of theirs (``__getattr__`` below): ≈ 0.2 MiB the site would keep for nothing.
"""

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from edgefed.drivers.hostnet.ruleset import render
    from edgefed.drivers.hostnet.site import HostNetSettings, SiteNetwork

# The agent's names, by the module that has them.
_LAZY = {"render": "ruleset", "HostNetSettings": "site", "SiteNetwork": "site"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value


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
