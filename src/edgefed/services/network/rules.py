"""Security group rules, checked as Neutron checks them, in Neutron's words.

First what the API layer refuses (``HTTPBadRequest`` and the attribute converters'
errors): a missing ``security_group_id`` or ``direction``, an unknown attribute, a
protocol that is neither a known name nor 0-255, a port outside 0-65535, a prefix
that is not a CIDR. Then the group (404) and who may add to it (403: a member of the
group's project, or an admin). Then the rule itself (``_validate_security_group_rule``
in Neutron's securitygroups_db.py): a port range needs a protocol, and only TCP, UDP,
SCTP, DCCP and UDP-Lite take one (min ≤ max, never 0); for ICMP it is the type (min)
and code (max), 0-255; the prefix's family matches the ethertype; IPv6-only protocols
are not IPv4 rules; a remote prefix and a remote group exclude each other; the remote
group exists. Last, in the store's transaction, the quota and duplicates (409).

Rules are created and deleted, never updated (as in Neutron).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

from edgefed.api.resource import Call, ProjectOwned
from edgefed.core.errors import BadRequest
from edgefed.services.network.groups import SECURITY_GROUP
from edgefed.services.network.neutron import (
    NeutronResource,
    bad_input,
    known_only,
    listed,
    neutron_body,
    one_of,
    required,
    text,
)
from edgefed.services.network.quotas import limit_of
from edgefed.services.network.rule_view import rule_view
from edgefed.store.network import (
    IP_PROTOCOLS,
    NewSecurityGroupRule,
    SecurityGroupRuleRecord,
    SecurityGroupRules,
    SecurityGroups,
    protocol_number,
)
from edgefed.store.network.protocols import ANY, ICMP_PROTOCOLS, IPV6_ONLY, PORT_PROTOCOLS

ATTRIBUTES = (
    "security_group_id",
    "direction",
    "ethertype",
    "protocol",
    "port_range_min",
    "port_range_max",
    "remote_ip_prefix",
    "remote_group_id",
    "remote_address_group_id",
    "description",
    "project_id",
    "tenant_id",
)
# As Neutron lists them when refusing one.
SUPPORTED = [None, *IP_PROTOCOLS]


def invalid(kind: str, message: str) -> BadRequest:
    return BadRequest(message, kind=kind)


def protocol_of(value: Any) -> str | None:
    """Neutron's ``convert_protocol``: a known name (lower-cased), or 0-255 as text."""
    if value is None:
        return None
    text_value = str(value).lower() if isinstance(value, str | int) else None
    if text_value == ANY:
        return None
    if text_value in IP_PROTOCOLS:
        return text_value
    if text_value is not None and text_value.isdigit() and 0 <= int(text_value) <= 255:
        return str(int(text_value))
    raise invalid(
        "SecurityGroupRuleInvalidProtocol",
        f"Security group rule protocol {value} not supported. Only protocol values "
        f"{SUPPORTED} and their integer representation (0 to 255) are supported.",
    )


def port_of(value: Any) -> int | None:
    """Neutron's ``convert_validate_port_value``: 0-65535."""
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = -1
    if isinstance(value, bool) or not 0 <= number <= 65535:
        raise invalid("SecurityGroupInvalidPortValue", f"Invalid value for port {value}")
    return number


def prefix_of(value: Any) -> str | None:
    """Neutron's ``convert_ip_prefix_to_cidr``: with its mask (192.0.2.7 → 192.0.2.7/32)."""
    if value in (None, ""):
        return None
    try:
        return str(ipaddress.ip_interface(str(value)))
    except ValueError as exc:
        raise bad_input_cidr(value) from exc


def bad_input_cidr(value: Any) -> BadRequest:
    return invalid("InvalidCIDR", f"Invalid CIDR {value} given as IP prefix.")


def check_ports(protocol: str | None, low: int | None, high: int | None) -> None:
    """Neutron's ``_validate_port_range``."""
    if low is None and high is None:
        return
    number = protocol_number(protocol)
    if protocol is None:
        raise invalid(
            "SecurityGroupProtocolRequiredWithPorts",
            "Must also specify protocol if port range is given.",
        )
    if number in PORT_PROTOCOLS.values():
        if low == 0 or high == 0:
            raise invalid("SecurityGroupInvalidPortValue", "Invalid value for port 0")
        if low is None or high is None or low > high:
            raise invalid(
                "SecurityGroupInvalidPortRange",
                "For TCP/UDP protocols, port_range_min must be <= port_range_max",
            )
    elif number in ICMP_PROTOCOLS:
        for value, field, attr in (
            (low, "type", "port_range_min"),
            (high, "code", "port_range_max"),
        ):
            if value is not None and not 0 <= value <= 255:
                raise invalid(
                    "SecurityGroupInvalidIcmpValue",
                    f"Invalid value for ICMP {field} ({attr}) {value}. It must be 0 to 255.",
                )
        if low is None:
            raise invalid(
                "SecurityGroupMissingIcmpType",
                f"ICMP code (port-range-max) {high} is provided but ICMP type "
                "(port-range-min) is missing.",
            )
    else:
        names = ", ".join(name.upper() for name in PORT_PROTOCOLS)
        raise invalid(
            "SecurityGroupInvalidProtocolForPort",
            f"Invalid protocol {number} for port range, only supported for {names} protocols.",
        )


class SecurityGroupRule(NeutronResource[SecurityGroupRuleRecord, SecurityGroupRules]):
    key = "security_group_rule"
    collection_key = "security_group_rules"
    path = "/v2.0/security-group-rules"
    id_param = "security_group_rule_id"
    title = "Security group rule"
    verbs = frozenset({"list", "show", "create", "delete"})
    store_class = SecurityGroupRules
    access = ProjectOwned[SecurityGroupRuleRecord](project=lambda r: r.project_id)
    not_found_message = "Security group rule {id} does not exist"
    filters = listed("security_group_id")
    body_schema = neutron_body(
        {
            "security_group_id": {"type": "string"},
            "direction": {"enum": ["ingress", "egress"]},
            "ethertype": {"enum": ["IPv4", "IPv6"]},
            "protocol": {"type": ["string", "integer", "null"]},
            "port_range_min": {"type": ["integer", "null"]},
            "port_range_max": {"type": ["integer", "null"]},
            "remote_ip_prefix": {"type": ["string", "null"]},
            "remote_group_id": {"type": ["string", "null"]},
        },
        required=("security_group_id", "direction"),
    )

    def view(self, rule: SecurityGroupRuleRecord, call: Call) -> dict[str, Any]:
        return rule_view(rule)

    async def records(
        self, call: Call, repo: SecurityGroupRules
    ) -> Sequence[SecurityGroupRuleRecord]:
        # As Neutron: a project that lists rules sees its default group's.
        if call.principal.project_id is not None:
            await SecurityGroups(call.ctx.store).ensure_default(call.principal.project_id)
        return await super().records(call, repo)

    async def create(self, call: Call, repo: SecurityGroupRules) -> SecurityGroupRuleRecord:
        data = await call.body()
        known_only(data, ATTRIBUTES)
        group_id = str(required(data, "security_group_id"))
        direction = one_of(
            data, "direction", ("ingress", "egress"), str(required(data, "direction"))
        )
        ethertype = _ethertype(data)
        protocol = protocol_of(data.get("protocol"))
        low, high = port_of(data.get("port_range_min")), port_of(data.get("port_range_max"))
        prefix = prefix_of(data.get("remote_ip_prefix"))
        remote_group = data.get("remote_group_id") or None
        if data.get("remote_address_group_id") is not None:
            raise bad_input("address groups are not supported by this cloud")
        description = text(data, "description")
        group = await SECURITY_GROUP.find(call.of(SECURITY_GROUP), group_id)
        self.access.check_owner(call, group.project_id, "create")
        # Neutron's rule checks, in its order.
        if ethertype == "IPv6" and protocol in ("icmp", "1"):
            protocol = "ipv6-icmp" if protocol == "icmp" else "58"
        check_ports(protocol, low, high)
        if prefix is not None and ipaddress.ip_interface(prefix).version != int(ethertype[-1]):
            raise invalid(
                "SecurityGroupRuleParameterConflict",
                f"Conflicting value ethertype {ethertype} for CIDR {data['remote_ip_prefix']}",
            )
        if ethertype == "IPv4" and protocol_number(protocol) in IPV6_ONLY:
            raise invalid(
                "SecurityGroupEthertypeConflictWithProtocol",
                f"Invalid ethertype {ethertype} for protocol {protocol}.",
            )
        if prefix is not None and remote_group is not None:
            raise invalid(
                "SecurityGroupRemoteGroupAndRemoteIpPrefix",
                "Only remote_ip_prefix or remote_group_id may be provided.",
            )
        if remote_group is not None:
            remote = await SecurityGroups(call.ctx.store).get(id=str(remote_group))
            if remote is None or remote.project_id != group.project_id:
                raise SECURITY_GROUP.not_found(str(remote_group))
        new = NewSecurityGroupRule(
            security_group_id=group.id,
            project_id=group.project_id,
            direction=direction,
            ethertype=ethertype,
            protocol=protocol,
            port_range_min=low,
            port_range_max=high,
            remote_ip_prefix=prefix,
            remote_group_id=str(remote_group) if remote_group else None,
            description=description,
        )
        limit = await limit_of(call.ctx.store, group.project_id, "security_group_rule")
        return await repo.add(new=new, limit=limit)


def _ethertype(data: dict[str, Any]) -> str:
    """IPv4 by default; the case of the given one does not matter."""
    value = data.get("ethertype")
    if isinstance(value, str):
        for known in ("IPv4", "IPv6"):
            if value.lower() == known.lower():
                return known
    return one_of(data, "ethertype", ("IPv4", "IPv6"), "IPv4")


SECURITY_GROUP_RULE = SecurityGroupRule()
