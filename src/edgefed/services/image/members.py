"""Image members: the owner shares a ``shared`` image with other projects.

The owner adds and removes members; each member (and only the member) accepts or
rejects; an accepted image shows in the member's image list. A member sees its own
membership, the owner sees all of them.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from edgefed.api.auth import Principal, current_principal
from edgefed.api.context import site_context
from edgefed.api.responses import Json
from edgefed.core.errors import BadRequest, Forbidden, NotFound, ValidationFailed
from edgefed.services.image.access import (
    can_write,
    require_unlocked,
    require_write,
    visible_image,
)
from edgefed.services.image.attributes import MAX_STRING, MEMBER_STATUSES, json_body
from edgefed.services.image.views import member_view
from edgefed.store.image import ImageRecord, ImageRepository, MemberRecord

router = APIRouter()


def _repo(request: Request) -> ImageRepository:
    return ImageRepository(site_context(request).store)


def _may_see_member(principal: Principal, record: ImageRecord, member: MemberRecord) -> bool:
    return can_write(principal, record) or principal.project_id == member.member_id


@router.post("/v2/images/{image_id}/members")
async def add_member(
    image_id: str, request: Request, principal: Principal = Depends(current_principal)
) -> Json:
    repo = _repo(request)
    record = await visible_image(repo, principal, image_id)
    require_write(principal, record, "share")
    require_unlocked(record)
    body = await json_body(request)
    member_id = body.get("member") if isinstance(body, dict) else None
    if not isinstance(member_id, str) or not member_id or len(member_id) > MAX_STRING:
        raise ValidationFailed(
            "'member' is required: the ID of the project to share with", field="member"
        )
    if record.visibility != "shared":
        raise Forbidden(
            f"Only shared images have members; image {image_id} is {record.visibility}."
        )
    member = await repo.add_member(image_id, member_id)
    return Json(member_view(member))


@router.get("/v2/images/{image_id}/members")
async def list_members(
    image_id: str, request: Request, principal: Principal = Depends(current_principal)
) -> Json:
    repo = _repo(request)
    record = await visible_image(repo, principal, image_id)
    members = [m for m in await repo.members(image_id) if _may_see_member(principal, record, m)]
    return Json({"members": [member_view(m) for m in members], "schema": "/v2/schemas/members"})


@router.get("/v2/images/{image_id}/members/{member_id}")
async def show_member(
    image_id: str,
    member_id: str,
    request: Request,
    principal: Principal = Depends(current_principal),
) -> Json:
    repo = _repo(request)
    record = await visible_image(repo, principal, image_id)
    member = await repo.member(image_id, member_id)
    if member is None or not _may_see_member(principal, record, member):
        raise NotFound(f"Member {member_id} not found for image {image_id}.")
    return Json(member_view(member))


@router.put("/v2/images/{image_id}/members/{member_id}")
async def update_member(
    image_id: str,
    member_id: str,
    request: Request,
    principal: Principal = Depends(current_principal),
) -> Json:
    repo = _repo(request)
    record = await visible_image(repo, principal, image_id)
    member = await repo.member(image_id, member_id)
    if member is None or not _may_see_member(principal, record, member):
        raise NotFound(f"Member {member_id} not found for image {image_id}.")
    if principal.project_id != member_id and not principal.is_admin:
        raise Forbidden("Only the member itself may accept or reject a shared image.")
    body = await json_body(request)
    status = body.get("status") if isinstance(body, dict) else None
    if status not in MEMBER_STATUSES:
        raise ValidationFailed(
            f"Invalid status {status!r}: must be one of {', '.join(MEMBER_STATUSES)}",
            field="status",
        )
    if isinstance(body, dict) and set(body) - {"status"}:
        raise BadRequest(f"Unexpected member attributes: {sorted(set(body) - {'status'})}")
    updated = await repo.set_member_status(image_id, member_id, str(status))
    return Json(member_view(updated))


@router.delete("/v2/images/{image_id}/members/{member_id}", status_code=204)
async def remove_member(
    image_id: str,
    member_id: str,
    request: Request,
    principal: Principal = Depends(current_principal),
) -> Response:
    repo = _repo(request)
    record = await visible_image(repo, principal, image_id)
    if not can_write(principal, record):
        member = await repo.member(image_id, member_id)
        if member is None or principal.project_id != member_id:
            raise NotFound(f"Member {member_id} not found for image {image_id}.")
        raise Forbidden("Only the image owner may remove a member.")
    require_unlocked(record)
    await repo.remove_member(image_id, member_id)
    return Response(status_code=204)
