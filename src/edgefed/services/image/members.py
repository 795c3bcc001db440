"""Image members, declared as a resource nested in images (as openstacksdk's ``Member``).

The owner adds and removes members of a ``shared`` image; each member (and only the
member) accepts or rejects; an accepted image shows in the member's image list. A
member sees its own membership, the owner sees all of them.
"""

from __future__ import annotations

from typing import Any

from edgefed.api.resource import Access, Call, Resource
from edgefed.core.errors import BadRequest, Forbidden, ValidationFailed
from edgefed.services.image.access import GLANCE, can_write
from edgefed.services.image.attributes import MAX_STRING, MEMBER_STATUSES
from edgefed.services.image.images import IMAGE, timestamp
from edgefed.store.image import ImageMembers, MemberRecord, NewMember


class MemberAccess(Access[MemberRecord]):
    """Seen by whoever may change the image, and by the member itself."""

    def may_read(self, call: Call, member: MemberRecord) -> bool:
        return (
            can_write(call.principal, call.parent) or call.principal.project_id == member.member_id
        )

    def check_write(self, call: Call, member: MemberRecord, verb: str) -> None:
        principal = call.principal
        if verb == "update" and principal.project_id != member.member_id and not principal.is_admin:
            raise Forbidden("Only the member itself may accept or reject a shared image.")
        if verb == "delete" and not can_write(principal, call.parent):
            raise Forbidden("Only the image owner may remove a member.")


class Member(Resource[MemberRecord, ImageMembers]):
    key = "member"
    collection_key = "members"
    path = "/v2/images/{image_id}/members"
    id_param = "member_id"
    attributes = ("image_id", "member_id", "status")
    dialect = GLANCE
    parent = IMAGE
    access = MemberAccess()
    not_found_message = "Member {id} not found for image {parent}."
    read_body_first = False
    update_method = "PUT"
    create_status = 200

    def repository(self, call: Call) -> ImageMembers:
        return ImageMembers(call.ctx.store, call.parent.id)

    def id_of(self, member: MemberRecord) -> str:
        return member.member_id

    def view(self, member: MemberRecord, call: Call) -> dict[str, Any]:
        return {
            **self.copy(member),
            "created_at": timestamp(member.created_at),
            "updated_at": timestamp(member.updated_at),
            "schema": "/v2/schemas/member",
        }

    def collection(self, call: Call, views: list[dict[str, Any]]) -> dict[str, Any]:
        return {"members": views, "schema": "/v2/schemas/members"}

    async def create(self, call: Call, repo: ImageMembers) -> MemberRecord:
        image = call.parent
        IMAGE.access.check_write(call.of(IMAGE), image, "share")
        IMAGE.check_unlocked(call, image)
        body = await call.body()
        member_id = body.get("member") if isinstance(body, dict) else None
        if not isinstance(member_id, str) or not member_id or len(member_id) > MAX_STRING:
            raise ValidationFailed(
                "'member' is required: the ID of the project to share with", field="member"
            )
        if image.visibility != "shared":
            raise Forbidden(
                f"Only shared images have members; image {image.id} is {image.visibility}."
            )
        return await repo.create(new=NewMember(member_id))

    async def changes(self, call: Call, repo: ImageMembers, member: MemberRecord) -> dict[str, Any]:
        body = await call.body()
        status = body.get("status") if isinstance(body, dict) else None
        if status not in MEMBER_STATUSES:
            raise ValidationFailed(
                f"Invalid status {status!r}: must be one of {', '.join(MEMBER_STATUSES)}",
                field="status",
            )
        if isinstance(body, dict) and set(body) - {"status"}:
            raise BadRequest(f"Unexpected member attributes: {sorted(set(body) - {'status'})}")
        return {"status": str(status)}

    async def before_delete(self, call: Call, repo: ImageMembers, member: MemberRecord) -> None:
        IMAGE.check_unlocked(call, call.parent)


MEMBER = Member()
