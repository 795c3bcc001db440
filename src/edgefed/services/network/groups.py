"""Security groups: a ``default`` group per project (made on first use, as Neutron does),
and the groups a project makes, within its quota.

Neutron's rules for the default group: no other group may be called ``default``, its
name does not change, and only an admin deletes it; a group a port is in is not
deleted. A new group starts with Neutron's two egress rules (everything out, IPv4 and
IPv6) and nothing in. Stateless groups are not offered: the hosts' filtering is
stateful (docs/network.md, "On the hosts").
"""

from __future__ import annotations

from typing import Any

from edgefed.api.resource import Call, ProjectOwned
from edgefed.core.errors import BadRequest, Conflict
from edgefed.services.network.neutron import (
    NeutronResource,
    bad_input,
    flag,
    known_only,
    neutron_body,
    owner_for,
    standard,
    text,
)
from edgefed.services.network.quotas import limit_of
from edgefed.services.network.rule_view import rule_view
from edgefed.store.network import (
    DEFAULT_GROUP_NAME,
    NewSecurityGroup,
    SecurityGroupRecord,
    SecurityGroups,
)

ATTRIBUTES = ("name", "description", "stateful", "project_id", "tenant_id", "tags")


def _default_taken() -> Conflict:
    return Conflict(
        "Default security group already exists.", kind="SecurityGroupDefaultAlreadyExists"
    )


def _stateful(data: dict[str, Any]) -> None:
    if not flag(data, "stateful", True):
        raise bad_input("stateless security groups are not supported by this cloud")


class SecurityGroup(NeutronResource[SecurityGroupRecord, SecurityGroups]):
    key = "security_group"
    collection_key = "security_groups"
    path = "/v2.0/security-groups"
    id_param = "security_group_id"
    title = "Security group"
    # The owner project reads (no role needed: the default group is made on the first
    # read of a project-scoped token) and its members write.
    access = ProjectOwned[SecurityGroupRecord](project=lambda g: g.project_id)
    not_found_message = "Security group {id} does not exist"
    body_schema = neutron_body({"stateful": {"type": "boolean"}, "project_id": {"type": "string"}})

    def repository(self, call: Call) -> SecurityGroups:
        return SecurityGroups(call.ctx.store, ensure_for=call.principal.project_id)

    def view(self, group: SecurityGroupRecord, call: Call) -> dict[str, Any]:
        return {
            **standard(group),
            "stateful": True,
            "shared": False,
            "security_group_rules": [rule_view(rule) for rule in group.rules],
        }

    async def create(self, call: Call, repo: SecurityGroups) -> SecurityGroupRecord:
        data = await call.body()
        known_only(data, ATTRIBUTES)
        name = text(data, "name")
        if name.lower() == DEFAULT_GROUP_NAME:
            raise _default_taken()
        _stateful(data)
        project_id = owner_for(call, data)
        # The project's default group comes first (and counts against the quota).
        await repo.ensure_default(project_id)
        store = call.ctx.store
        return await repo.add(
            new=NewSecurityGroup(
                name=name, project_id=project_id, description=text(data, "description")
            ),
            limit=await limit_of(store, project_id, "security_group"),
            rule_limit=await limit_of(store, project_id, "security_group_rule"),
        )

    async def changes(
        self, call: Call, repo: SecurityGroups, group: SecurityGroupRecord
    ) -> dict[str, Any]:
        data = await call.body()
        known_only(data, ATTRIBUTES)
        _stateful(data)
        if "name" in data and group.is_default:
            raise Conflict(
                "Updating default security group not allowed.",
                kind="SecurityGroupCannotUpdateDefault",
            )
        changes = {key: text(data, key) for key in ("name", "description") if key in data}
        if changes.get("name", "").lower() == DEFAULT_GROUP_NAME:
            raise _default_taken()
        if "project_id" in data or "tenant_id" in data:
            raise BadRequest("Cannot update read-only attribute project_id", kind="HTTPBadRequest")
        return changes

    async def before_delete(
        self, call: Call, repo: SecurityGroups, group: SecurityGroupRecord
    ) -> None:
        if group.is_default and not call.principal.is_admin:
            raise Conflict(
                "Insufficient rights for removing default security group.",
                kind="SecurityGroupCannotRemoveDefault",
            )


SECURITY_GROUP = SecurityGroup()
