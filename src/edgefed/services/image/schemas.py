"""JSON schemas (``/v2/schemas/*``) and discovery info (``/v2/info/*``), as Glance serves.

Clients that build forms or validate locally read these; the rules are the same ones
``attributes`` enforces.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from edgefed.api.auth import Principal, current_principal
from edgefed.api.responses import Json
from edgefed.api.service import DeclaredRoute
from edgefed.services.image.attributes import (
    CONTAINER_FORMATS,
    DISK_FORMATS,
    MEMBER_STATUSES,
    VISIBILITIES,
)

router = APIRouter(route_class=DeclaredRoute)

_NULLABLE_STRING: dict[str, Any] = {"type": ["null", "string"], "maxLength": 255}


def image_schema() -> dict[str, Any]:
    read_only = {"readOnly": True}
    return {
        "name": "image",
        "additionalProperties": {"type": "string"},
        "properties": {
            "id": {
                "type": "string",
                "pattern": "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}"
                "-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$",
                "description": "An identifier for the image",
            },
            "name": {**_NULLABLE_STRING, "description": "Descriptive name for the image"},
            "status": {
                "type": "string",
                "enum": [
                    "queued",
                    "saving",
                    "active",
                    "killed",
                    "deleted",
                    "uploading",
                    "importing",
                    "pending_delete",
                    "deactivated",
                ],
                **read_only,
            },
            "visibility": {"type": "string", "enum": list(VISIBILITIES)},
            "protected": {"type": "boolean"},
            "os_hidden": {"type": "boolean"},
            "checksum": {"type": ["null", "string"], "maxLength": 32, **read_only},
            "os_hash_algo": {"type": ["null", "string"], "maxLength": 64, **read_only},
            "os_hash_value": {"type": ["null", "string"], "maxLength": 128, **read_only},
            "owner": _NULLABLE_STRING,
            "size": {"type": ["null", "integer"], **read_only},
            "virtual_size": {"type": ["null", "integer"], **read_only},
            "container_format": {"type": ["null", "string"], "enum": [None, *CONTAINER_FORMATS]},
            "disk_format": {"type": ["null", "string"], "enum": [None, *DISK_FORMATS]},
            "created_at": {"type": "string", **read_only},
            "updated_at": {"type": "string", **read_only},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 255}},
            "min_ram": {"type": "integer"},
            "min_disk": {"type": "integer"},
            "self": {"type": "string", **read_only},
            "file": {"type": "string", **read_only},
            "schema": {"type": "string", **read_only},
        },
        "links": [
            {"rel": "self", "href": "{self}"},
            {"rel": "enclosure", "href": "{file}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    }


def member_schema() -> dict[str, Any]:
    return {
        "name": "member",
        "properties": {
            "image_id": {"type": "string"},
            "member_id": {"type": "string"},
            "status": {"type": "string", "enum": list(MEMBER_STATUSES)},
            "created_at": {"type": "string"},
            "updated_at": {"type": "string"},
            "schema": {"type": "string", "readOnly": True},
        },
    }


def _collection(name: str, item: dict[str, Any], links: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "name": name,
        "properties": {
            name: {"type": "array", "items": item},
            "schema": {"type": "string"},
            "first": {"type": "string"},
            "next": {"type": "string"},
        },
        "links": links,
    }


@router.get("/v2/schemas/image")
async def get_image_schema(principal: Principal = Depends(current_principal)) -> Json:
    return Json(image_schema())


@router.get("/v2/schemas/images")
async def get_images_schema(principal: Principal = Depends(current_principal)) -> Json:
    return Json(
        _collection(
            "images",
            image_schema(),
            [
                {"rel": "first", "href": "{first}"},
                {"rel": "next", "href": "{next}"},
                {"rel": "describedby", "href": "{schema}"},
            ],
        )
    )


@router.get("/v2/schemas/member")
async def get_member_schema(principal: Principal = Depends(current_principal)) -> Json:
    return Json(member_schema())


@router.get("/v2/schemas/members")
async def get_members_schema(principal: Principal = Depends(current_principal)) -> Json:
    return Json(
        _collection("members", member_schema(), [{"rel": "describedby", "href": "{schema}"}])
    )


@router.get("/v2/info/import")
async def import_info(principal: Principal = Depends(current_principal)) -> Json:
    return Json(
        {
            "import-methods": {
                "description": "Import methods available.",
                "type": "array",
                "value": ["glance-direct"],
            }
        }
    )


@router.get("/v2/info/stores")
async def stores_info(principal: Principal = Depends(current_principal)) -> Json:
    return Json(
        {
            "stores": [
                {
                    "id": "local",
                    "description": "Content-addressed files in this site's data directory",
                    "default": True,
                }
            ]
        }
    )
