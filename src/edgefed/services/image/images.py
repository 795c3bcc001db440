"""Image metadata: create, list, show, update (JSON patch), delete, tags and actions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from edgefed.api.auth import Principal, current_principal
from edgefed.api.context import site_context
from edgefed.api.responses import Json
from edgefed.core.errors import BadRequest, Forbidden, NotFound
from edgefed.services.image.access import (
    require_creator,
    require_may_publicize,
    require_unlocked,
    require_write,
    visible_image,
)
from edgefed.services.image.attributes import (
    BASE,
    MAX_TAGS,
    json_body,
    refuse_read_only,
    validate_base,
    validate_id,
    validate_property,
    validate_tag,
)
from edgefed.services.image.listing import links, select_images
from edgefed.services.image.patch import apply_patch, require_patch_media_type
from edgefed.services.image.views import image_view
from edgefed.store.image import ImageRecord, ImageRepository

router = APIRouter()

IMPORT_METHODS = "glance-direct"


def repository(request: Request) -> ImageRepository:
    return ImageRepository(site_context(request).store)


def _image_headers() -> dict[str, str]:
    return {"OpenStack-image-import-methods": IMPORT_METHODS}


@router.post("/v2/images")
async def create_image(request: Request, principal: Principal = Depends(current_principal)) -> Json:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object describing the image.")
    owner = require_creator(principal)
    values: dict[str, Any] = {}
    properties: dict[str, str] = {}
    image_id: str | None = None
    for name, value in body.items():
        if name == "id":
            image_id = validate_id(value)
            continue
        refuse_read_only(name)
        if name in BASE:
            values[name] = validate_base(name, value)
        else:
            properties[name] = validate_property(name, value)
    requested_owner = values.pop("owner", None)
    if requested_owner is not None and requested_owner != owner:
        if not principal.is_admin:
            raise Forbidden("You are not permitted to create images owned by another project.")
        owner = requested_owner
    visibility = values.pop("visibility", "shared")
    require_may_publicize(principal, visibility)
    record = await repository(request).create(
        owner=owner,
        image_id=image_id,
        visibility=visibility,
        properties=properties,
        **values,
    )
    return Json(image_view(record), status_code=201, headers=_image_headers())


@router.get("/v2/images")
async def list_images(request: Request, principal: Principal = Depends(current_principal)) -> Json:
    records, statuses = await repository(request).list_visible(
        project_id=principal.project_id, all_projects=principal.is_admin
    )
    if not principal.is_admin:
        records = [r for r in records if _readable(principal, r, statuses)]
    page = select_images(
        records,
        params=request.query_params,
        project_id=principal.project_id,
        is_admin=principal.is_admin,
        member_statuses=statuses,
    )
    return Json(
        {"images": [image_view(r) for r in page.images], **links(request.query_params, page)}
    )


def _readable(principal: Principal, record: ImageRecord, statuses: dict[str, str]) -> bool:
    if record.owner == principal.project_id:
        return bool(principal.role_names & {"reader", "member"})
    return record.visibility in ("public", "community") or record.id in statuses


@router.get("/v2/images/{image_id}")
async def show_image(
    image_id: str, request: Request, principal: Principal = Depends(current_principal)
) -> Json:
    record = await visible_image(repository(request), principal, image_id)
    return Json(image_view(record))


@router.patch("/v2/images/{image_id}")
async def update_image(
    image_id: str, request: Request, principal: Principal = Depends(current_principal)
) -> Json:
    require_patch_media_type(request.headers.get("content-type"))
    repo = repository(request)
    record = await visible_image(repo, principal, image_id)
    require_write(principal, record, "update")
    require_unlocked(record)
    result = apply_patch(record, await json_body(request))
    if "visibility" in result.changes and result.visibility != record.visibility:
        require_may_publicize(principal, result.visibility)
    owner = result.changes.get("owner", record.owner)
    if owner != record.owner and not principal.is_admin:
        raise Forbidden("Only an administrator may give an image to another project.")
    if result.changes:
        record = await repo.update(image_id, **result.changes)
    return Json(image_view(record))


@router.delete("/v2/images/{image_id}", status_code=204)
async def delete_image(
    image_id: str, request: Request, principal: Principal = Depends(current_principal)
) -> Response:
    repo = repository(request)
    record = await visible_image(repo, principal, image_id)
    require_write(principal, record, "delete")
    require_unlocked(record)
    if record.protected:
        raise Forbidden(f"Image {image_id} is protected and cannot be deleted.")
    await repo.delete(image_id, data_dir=site_context(request).settings.data_dir)
    return Response(status_code=204)


@router.put("/v2/images/{image_id}/tags/{tag}", status_code=204)
async def add_tag(
    image_id: str, tag: str, request: Request, principal: Principal = Depends(current_principal)
) -> Response:
    repo = repository(request)
    record = await visible_image(repo, principal, image_id)
    require_write(principal, record, "tag")
    require_unlocked(record)
    validate_tag(tag)
    if tag not in record.tags:
        if len(record.tags) >= MAX_TAGS:
            raise Forbidden(f"An image may have at most {MAX_TAGS} tags.")
        await repo.update(image_id, tags=[*record.tags, tag])
    return Response(status_code=204)


@router.delete("/v2/images/{image_id}/tags/{tag}", status_code=204)
async def remove_tag(
    image_id: str, tag: str, request: Request, principal: Principal = Depends(current_principal)
) -> Response:
    repo = repository(request)
    record = await visible_image(repo, principal, image_id)
    require_write(principal, record, "untag")
    require_unlocked(record)
    if tag not in record.tags:
        raise NotFound(f"Tag {tag} not found on image {image_id}.")
    await repo.update(image_id, tags=[t for t in record.tags if t != tag])
    return Response(status_code=204)


@router.post("/v2/images/{image_id}/actions/deactivate", status_code=204)
async def deactivate(
    image_id: str, request: Request, principal: Principal = Depends(current_principal)
) -> Response:
    repo = repository(request)
    record = await visible_image(repo, principal, image_id)
    require_write(principal, record, "deactivate")
    require_unlocked(record)
    if record.status not in ("active", "deactivated"):
        raise Forbidden(f"Not allowed to deactivate image in status '{record.status}'.")
    if record.status == "active":
        await repo.update(image_id, status="deactivated")
    return Response(status_code=204)


@router.post("/v2/images/{image_id}/actions/reactivate", status_code=204)
async def reactivate(
    image_id: str, request: Request, principal: Principal = Depends(current_principal)
) -> Response:
    repo = repository(request)
    record = await visible_image(repo, principal, image_id)
    require_write(principal, record, "reactivate")
    require_unlocked(record)
    if record.status not in ("active", "deactivated"):
        raise Forbidden(f"Not allowed to reactivate image in status '{record.status}'.")
    if record.status == "deactivated":
        await repo.update(image_id, status="active")
    return Response(status_code=204)
