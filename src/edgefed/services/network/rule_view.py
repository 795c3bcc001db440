"""A security group rule on the wire (shown alone, and inside its group)."""

from __future__ import annotations

import ipaddress
from typing import Any

from edgefed.services.network.neutron import stamp
from edgefed.store.network import SecurityGroupRuleRecord


def rule_view(rule: SecurityGroupRuleRecord) -> dict[str, Any]:
    prefix = rule.remote_ip_prefix
    return {
        "id": rule.id,
        "tenant_id": rule.project_id,
        "project_id": rule.project_id,
        "security_group_id": rule.security_group_id,
        "direction": rule.direction,
        "ethertype": rule.ethertype,
        "protocol": rule.protocol,
        "port_range_min": rule.port_range_min,
        "port_range_max": rule.port_range_max,
        "remote_ip_prefix": prefix,
        "normalized_cidr": str(ipaddress.ip_network(prefix, strict=False)) if prefix else None,
        "remote_group_id": rule.remote_group_id,
        "remote_address_group_id": None,
        "description": rule.description,
        "created_at": stamp(rule.created_at),
        "updated_at": stamp(rule.updated_at),
        "revision_number": 0,
    }
