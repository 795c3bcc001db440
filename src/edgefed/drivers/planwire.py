"""A host's network plan (``hostnet.SitePlan``) as JSON, between a site and its agent.

The site builds the plan of a host from its store (``drivers.agent_network``); the
agent, which loads no store, rebuilds it here and hands it to ``SiteNetwork.apply``.
The values check themselves when made, so a bad document fails before anything on
the host changes (``HostNetError``).
"""

from __future__ import annotations

from typing import Any

from edgefed.drivers.hostnet.model import NetworkPlan, PortPlan, Rule, SitePlan, SubnetPlan


def plan_to_json(plan: SitePlan) -> dict[str, Any]:
    return {
        "networks": [
            {
                "network_id": n.network_id,
                "mtu": n.mtu,
                "subnets": [
                    {
                        "subnet_id": s.subnet_id,
                        "cidr": s.cidr,
                        "gateway_ip": s.gateway_ip,
                        "enable_dhcp": s.enable_dhcp,
                        "dns_nameservers": list(s.dns_nameservers),
                    }
                    for s in n.subnets
                ],
            }
            for n in plan.networks
        ],
        "ports": [
            {
                "port_id": p.port_id,
                "network_id": p.network_id,
                "mac": p.mac,
                "ips": list(p.ips),
                "hostname": p.hostname,
                "security_group_ids": list(p.security_group_ids),
                "port_security": p.port_security,
            }
            for p in plan.ports
        ],
        "groups": {
            group: [
                {
                    "direction": r.direction,
                    "ethertype": r.ethertype,
                    "protocol": r.protocol,
                    "port_range_min": r.port_range_min,
                    "port_range_max": r.port_range_max,
                    "remote_ip_prefix": r.remote_ip_prefix,
                    "remote_group_id": r.remote_group_id,
                }
                for r in rules
            ]
            for group, rules in plan.groups.items()
        },
        "members": {group: list(addresses) for group, addresses in plan.members.items()},
    }


def plan_from_json(doc: dict[str, Any]) -> SitePlan:
    return SitePlan(
        networks=tuple(
            NetworkPlan(
                network_id=n["network_id"],
                mtu=int(n.get("mtu") or 1500),
                subnets=tuple(
                    SubnetPlan(
                        subnet_id=s["subnet_id"],
                        cidr=s["cidr"],
                        gateway_ip=s.get("gateway_ip"),
                        enable_dhcp=bool(s.get("enable_dhcp", True)),
                        dns_nameservers=tuple(s.get("dns_nameservers") or ()),
                    )
                    for s in n.get("subnets") or ()
                ),
            )
            for n in doc.get("networks") or ()
        ),
        ports=tuple(
            PortPlan(
                port_id=p["port_id"],
                network_id=p["network_id"],
                mac=p["mac"],
                ips=tuple(p.get("ips") or ()),
                hostname=p.get("hostname") or "",
                security_group_ids=tuple(p.get("security_group_ids") or ()),
                port_security=bool(p.get("port_security", True)),
            )
            for p in doc.get("ports") or ()
        ),
        groups={
            group: tuple(Rule(**rule) for rule in rules)
            for group, rules in (doc.get("groups") or {}).items()
        },
        members={
            group: tuple(addresses) for group, addresses in (doc.get("members") or {}).items()
        },
    )
