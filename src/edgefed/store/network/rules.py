"""Security group rules: never the same rule twice in a group, never beyond the quota.

Both are decided inside the write transaction that adds the rule (serialised on
PostgreSQL), so two identical requests racing make one rule and one 409. "The same
rule" is Neutron's reading: the same direction, ethertype, port range, remote and
protocol, where "tcp" and "6" are one protocol, "icmp" in an IPv6 rule is
"ipv6-icmp", and no prefix, ``0.0.0.0/0`` and ``::/0`` all mean anywhere.
"""

from __future__ import annotations

import ipaddress

from sqlalchemy import insert, select

from edgefed.core.errors import Conflict
from edgefed.store.network.groups import RULES, count_of, over_quota
from edgefed.store.network.locks import SECURITY_LOCK, serialise
from edgefed.store.network.protocols import protocol_number
from edgefed.store.network.tables import (
    NewSecurityGroupRule,
    SecurityGroupRuleRecord,
    security_group_rules,
)
from edgefed.store.records import RecordRepository, column_values

RuleKey = tuple[object, ...]


def rule_key(rule: NewSecurityGroupRule | SecurityGroupRuleRecord) -> RuleKey:
    """What makes two rules of a group the same rule."""
    number = protocol_number(rule.protocol)
    if rule.ethertype == "IPv6" and number == 1:
        number = 58
    prefix = None
    if rule.remote_ip_prefix is not None:
        network = ipaddress.ip_network(rule.remote_ip_prefix, strict=False)
        prefix = str(network) if network.prefixlen else None
    return (
        rule.security_group_id,
        rule.direction,
        rule.ethertype,
        number,
        rule.port_range_min,
        rule.port_range_max,
        prefix,
        rule.remote_group_id,
    )


class SecurityGroupRules(RecordRepository[SecurityGroupRuleRecord, NewSecurityGroupRule]):
    table = security_group_rules
    mapper = RULES

    async def add(self, *, new: NewSecurityGroupRule, limit: int) -> SecurityGroupRuleRecord:
        """The new rule; 409 ``OverQuota`` when the project has ``limit`` rules (-1: no
        limit), 409 ``SecurityGroupRuleExists`` naming the rule it repeats."""
        values = self.stamped(column_values(new))
        key = rule_key(new)
        async with self.store.write() as conn:
            await serialise(self.store, conn, SECURITY_LOCK)
            if 0 <= limit <= await count_of(conn, security_group_rules, new.project_id):
                raise over_quota("security_group_rule")
            siblings = RULES.all(
                await conn.execute(
                    select(security_group_rules).where(
                        security_group_rules.c.security_group_id == new.security_group_id
                    )
                )
            )
            for rule in siblings:
                if rule_key(rule) == key:
                    raise Conflict(
                        f"Security group rule already exists. Rule id is {rule.id}.",
                        kind="SecurityGroupRuleExists",
                    )
            await conn.execute(insert(security_group_rules).values(**values))
        made = await self.get(id=str(values["id"]))
        assert made is not None
        return made
