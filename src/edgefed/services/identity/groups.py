"""/v3/groups: CRUD (admin only). Deleting a group revokes its members' tokens: the
roles it gave them are gone. Membership is ``members.py``."""

from __future__ import annotations

from edgefed.api.resource import Call
from edgefed.core.ids import DEFAULT_DOMAIN_ID, predictable_id
from edgefed.services.identity.domains import require_domain
from edgefed.services.identity.keystone import KeystoneResource, exact
from edgefed.services.identity.revoking import revoke_later, revoke_pending
from edgefed.services.identity.schemas import GroupCreateBody, GroupUpdateBody
from edgefed.services.identity.state import state_for
from edgefed.store.identity import GroupRecord, Groups


class Group(KeystoneResource[GroupRecord, Groups]):
    key = "group"
    collection_key = "groups"
    path = "/v3/groups"
    attributes = ("id", "name", "domain_id", "description")
    filters = exact("name", "domain_id")
    store_class = Groups
    create_body = GroupCreateBody
    update_body = GroupUpdateBody
    required = ("name",)
    immutable = ("domain_id",)

    async def create(self, call: Call, repo: Groups) -> GroupRecord:
        g = call.model(GroupCreateBody).group
        domain_id = await require_domain(call, g.domain_id or DEFAULT_DOMAIN_ID)
        new = GroupRecord(
            id=predictable_id("group", g.name, domain_id=domain_id),
            name=g.name,
            domain_id=domain_id,
            description=g.description or "",
            extra=g.extras(),
        )
        return await repo.create(new=new)

    async def before_delete(self, call: Call, repo: Groups, group: GroupRecord) -> None:
        # Who loses the group's roles: read now, revoked once it is gone.
        members = await state_for(call.ctx).repos.users.in_group(group.id)
        revoke_later(call, (m.id for m in members))

    async def after_write(
        self, call: Call, verb: str, before: GroupRecord | None, after: GroupRecord | None
    ) -> None:
        if verb == "delete":
            await revoke_pending(call)


GROUP = Group()
