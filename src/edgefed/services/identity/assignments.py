"""Grants: the roles of a user or a group on a project, a domain or the system.

Keystone's paths: ``/v3/{projects|domains}/{id}/{users|groups}/{id}/roles/{role_id}``
and ``/v3/system/{users|groups}/{id}/roles/{role_id}`` (PUT grant, HEAD/GET check,
DELETE revoke), and the same without the role to list. Each (target, actor) pair is a
``Grant``: a list of roles nested in the target (found first, its 404), whose custom
actions grant, check and revoke one role (found next, its 404). Removing a grant revokes
the tokens it backed: the user's, or every member's of the group, on that project.
Admin only; a user may check and list its own grants.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from edgefed.api.resource import Call, Resource, action
from edgefed.core.errors import Locked, NotFound
from edgefed.services.identity.domains import DOMAIN
from edgefed.services.identity.groups import GROUP
from edgefed.services.identity.keystone import (
    KeystonePolicy,
    KeystoneResource,
    head_and_get,
    itself,
)
from edgefed.services.identity.projects import PROJECT
from edgefed.services.identity.revoking import revoke_users
from edgefed.services.identity.roles import ROLE
from edgefed.services.identity.state import state_for
from edgefed.services.identity.users import USER
from edgefed.store.identity import AssignmentRecord, RoleRecord, Roles

SYSTEM_ID = "all"


def _own_grants(call: Call, id: str | None) -> bool:
    return itself(call, call.path("user_id"))


class Grant(KeystoneResource[RoleRecord, Roles]):
    key = "role"
    collection_key = "roles"
    verbs = frozenset({"list"})

    def __init__(self, target: Resource[Any, Any] | None, actor: Resource[Any, Any]):
        self.target_type = target.key if target is not None else "system"
        self.actor = actor
        self.parent = target
        actors = f"{actor.collection_key}/{{{actor.id_param}}}"
        if target is None:
            self.path = f"/v3/system/{actors}/roles"
        else:
            self.path = f"/v3/{target.collection_key}/{{{target.id_param}}}/{actors}/roles"
        own = dict.fromkeys(("list", "check_grant"), _own_grants) if actor is USER else {}
        rules = {"list": "list_grants"}
        if target is None:
            rules["create_grant"] = "create_system_grant"
        self.access = KeystonePolicy(own=own, rules=rules)
        super().__init__()

    store_class = Roles

    def view(self, role: RoleRecord, call: Call) -> dict[str, Any]:
        return ROLE.view(role, call)

    async def _actor_id(self, call: Call) -> str:
        """The user or the group of the path, which must exist."""
        actor = await self.actor.find(call, call.path(self.actor.id_param))
        return str(actor.id)

    async def _assignment(self, call: Call, role: RoleRecord) -> AssignmentRecord:
        target_id = call.parent.id if call.parent is not None else SYSTEM_ID
        return AssignmentRecord(
            actor_type=self.actor.key,
            actor_id=await self._actor_id(call),
            target_type=self.target_type,
            target_id=target_id,
            role_id=role.id,
        )

    async def _held(self, call: Call, role: RoleRecord) -> AssignmentRecord:
        assignment = await state_for(call.ctx).repos.assignments.find(
            assignment=await self._assignment(call, role)
        )
        if assignment is None:
            raise NotFound(f"Could not find role assignment with role: {role.id}.")
        return assignment

    async def records(self, call: Call, repo: Roles) -> Sequence[RoleRecord]:
        target_id = call.parent.id if call.parent is not None else SYSTEM_ID
        held = await state_for(call.ctx).repos.assignments.list(
            actors=[(self.actor.key, await self._actor_id(call))],
            target_type=self.target_type,
            target_id=target_id,
        )
        return await repo.list(filters={"id": {a.role_id for a in held}})

    @action("PUT", "", status_code=204, verb="create_grant")
    async def grant(self, call: Call, repo: Roles, role: RoleRecord) -> None:
        """Grant a role (nothing changes when it is held already)."""
        assignment = await self._assignment(call, role)
        await state_for(call.ctx).repos.assignments.grant(assignment=assignment)

    async def _check(self, call: Call, repo: Roles, role: RoleRecord) -> None:
        await self._held(call, role)

    check, check_get = head_and_get(
        "", verb="check_grant", summary="Whether a role is granted (204) or not (404)."
    )(_check)

    @action("DELETE", "", status_code=204, verb="revoke_grant")
    async def revoke(self, call: Call, repo: Roles, role: RoleRecord) -> None:
        """Revoke a role, and the tokens it backed."""
        held = await self._held(call, role)
        if held.origin:
            raise Locked(
                f"Role assignment of role {role.id} is managed by sync source {held.origin}; "
                "change it there.",
                source=held.origin,
            )
        state = state_for(call.ctx)
        await state.repos.assignments.revoke(assignment=held)
        users = [held.actor_id]
        if held.actor_type == "group":
            users = [m.id for m in await state.repos.users.in_group(held.actor_id)]
        project_id = held.target_id if held.target_type == "project" else None
        await revoke_users(state, users, project_id=project_id)


GRANTS = tuple(
    Grant(target, actor) for target in (PROJECT, DOMAIN, None) for actor in (USER, GROUP)
)
