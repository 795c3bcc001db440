"""Images, declared: create, show, update (JSON patch), delete; tags, deactivation and the
image's data (``data``) as actions; the list, with Glance's filters, sort and paging,
written by hand (``listing``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request

from edgefed.api.resource import Call, Resource, action
from edgefed.api.resource.routes import begin
from edgefed.api.responses import Json
from edgefed.api.service import DeclaredRoute
from edgefed.core.errors import BadRequest, Forbidden, NotFound
from edgefed.services.image import data
from edgefed.services.image.access import (
    GLANCE,
    ImageAccess,
    require_creator,
    require_may_publicize,
)
from edgefed.services.image.attributes import (
    BASE,
    MAX_TAGS,
    refuse_read_only,
    validate_base,
    validate_id,
    validate_property,
    validate_tag,
)
from edgefed.services.image.listing import links, select_images
from edgefed.services.image.patch import apply_patch, require_patch_media_type
from edgefed.store.image import ImageRecord, Images, NewImage

IMPORT_METHODS = "glance-direct"


def timestamp(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Image(Resource[ImageRecord, Images]):
    key = "image"
    collection_key = "images"
    path = "/v2/images"
    attributes = (
        "id",
        "name",
        "status",
        "visibility",
        "protected",
        "os_hidden",
        "owner",
        "container_format",
        "disk_format",
        "min_disk",
        "min_ram",
        "size",
        "virtual_size",
        "checksum",
        "os_hash_algo",
        "os_hash_value",
    )
    dialect = GLANCE
    verbs = frozenset({"show", "create", "update", "delete"})
    access = ImageAccess()
    # Glance looks the image up (404, 403, 409) before it reads a patch (400).
    read_body_first = False
    create_headers = {"OpenStack-image-import-methods": IMPORT_METHODS}
    body_schema = {
        "type": "object",
        "properties": {
            "name": {"type": ["string", "null"], "maxLength": 255},
            "disk_format": {"type": ["string", "null"]},
            "container_format": {"type": ["string", "null"]},
            "visibility": {"type": "string"},
            "min_disk": {"type": "integer", "minimum": 0},
            "min_ram": {"type": "integer", "minimum": 0},
            "protected": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 255}},
        },
        "additionalProperties": {"type": "string"},
    }

    def repository(self, call: Call) -> Images:
        return Images(call.ctx.store, data_dir=call.ctx.settings.data_dir)

    def view(self, record: ImageRecord, call: Call) -> dict[str, Any]:
        """Glance's image document: extra properties at the top level, then the base
        attributes and links."""
        doc: dict[str, Any] = {
            **record.properties,
            **self.copy(record),
            "tags": list(record.tags),
            "created_at": timestamp(record.created_at),
            "updated_at": timestamp(record.updated_at),
            "self": f"/v2/images/{record.id}",
            "file": f"/v2/images/{record.id}/file",
            "schema": "/v2/schemas/image",
        }
        if record.origin is not None:
            doc["edgefed:origin"] = record.origin
        return doc

    def origin(self, call: Call, record: ImageRecord) -> str | None:
        return record.origin

    def check_request(self, call: Call, verb: str) -> None:
        if verb == "update":
            require_patch_media_type(call.request.headers.get("content-type"))

    async def create(self, call: Call, repo: Images) -> ImageRecord:
        body = await call.body()
        if not isinstance(body, dict):
            raise BadRequest("The request body must be a JSON object describing the image.")
        principal = call.principal
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
        new = NewImage(
            owner=owner, id=image_id, visibility=visibility, properties=properties, **values
        )
        return await repo.create(new=new)

    async def changes(self, call: Call, repo: Images, record: ImageRecord) -> dict[str, Any]:
        result = apply_patch(record, await call.body())
        if "visibility" in result.changes and result.visibility != record.visibility:
            require_may_publicize(call.principal, result.visibility)
        owner = result.changes.get("owner", record.owner)
        if owner != record.owner and not call.principal.is_admin:
            raise Forbidden("Only an administrator may give an image to another project.")
        return result.changes

    async def before_delete(self, call: Call, repo: Images, record: ImageRecord) -> None:
        if record.protected:
            raise Forbidden(f"Image {record.id} is protected and cannot be deleted.")

    @action("PUT", "/tags/{tag}", writes=True, status_code=204, verb="tag")
    async def add_tag(self, call: Call, repo: Images, record: ImageRecord) -> None:
        """Tag an image."""
        tag = validate_tag(call.path("tag"))
        if tag not in record.tags:
            if len(record.tags) >= MAX_TAGS:
                raise Forbidden(f"An image may have at most {MAX_TAGS} tags.")
            await repo.update(id=record.id, changes={"tags": [*record.tags, tag]})

    @action("DELETE", "/tags/{tag}", writes=True, status_code=204, verb="untag")
    async def remove_tag(self, call: Call, repo: Images, record: ImageRecord) -> None:
        """Remove a tag from an image."""
        tag = call.path("tag")
        if tag not in record.tags:
            raise NotFound(f"Tag {tag} not found on image {record.id}.")
        await repo.update(id=record.id, changes={"tags": [t for t in record.tags if t != tag]})

    @action("POST", "/actions/deactivate", writes=True, status_code=204)
    async def deactivate(self, call: Call, repo: Images, record: ImageRecord) -> None:
        """Deactivate an image: only admins download its data."""
        await _switch(repo, record, "deactivate", to="deactivated")

    @action("POST", "/actions/reactivate", writes=True, status_code=204)
    async def reactivate(self, call: Call, repo: Images, record: ImageRecord) -> None:
        """Reactivate a deactivated image."""
        await _switch(repo, record, "reactivate", to="active")

    upload = data.upload
    stage = data.stage
    import_image = data.import_image
    download = data.download


async def _switch(repo: Images, record: ImageRecord, verb: str, *, to: str) -> None:
    if record.status not in ("active", "deactivated"):
        raise Forbidden(f"Not allowed to {verb} image in status '{record.status}'.")
    if record.status != to:
        await repo.update(id=record.id, changes={"status": to})


IMAGE = Image()
router = APIRouter(route_class=DeclaredRoute)


@router.get("/v2/images")
async def list_images(request: Request) -> Json:
    call = await begin(IMAGE, request, "list")
    principal = call.principal
    records, statuses = await IMAGE.repository(call).list_visible(
        project_id=principal.project_id, all_projects=principal.is_admin
    )
    if not principal.is_admin:
        records = [r for r in records if _readable(call, r, statuses)]
    page = select_images(
        list(records),
        params=request.query_params,
        project_id=principal.project_id,
        is_admin=principal.is_admin,
        member_statuses=dict(statuses),
    )
    return Json(
        {"images": [IMAGE.view(r, call) for r in page.images], **links(request.query_params, page)}
    )


def _readable(call: Call, record: ImageRecord, statuses: Any) -> bool:
    principal = call.principal
    if record.owner == principal.project_id:
        return bool(principal.role_names & {"reader", "member"})
    if record.visibility == "shared":
        return record.id in statuses  # a member: memberships count while it is shared
    return record.visibility in ("public", "community")
