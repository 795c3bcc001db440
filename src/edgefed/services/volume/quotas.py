"""Volume quota sets, ``/limits`` and the availability zones: documents, not records.

Cinder's defaults; a limit per volume type (``volumes_<type>``, ``gigabytes_<type>``,
``snapshots_<type>``, -1 unless set) for every type the site has. Creates check them
in their own transactions (store/volume/quotas.py); ``per_volume_gigabytes`` bounds
one volume's size.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from edgefed.api.auth import Principal
from edgefed.api.bodies import read_object
from edgefed.api.resource import Call, routes
from edgefed.api.responses import Json
from edgefed.api.service import DeclaredRoute
from edgefed.core.errors import BadRequest, Forbidden, PayloadTooLarge
from edgefed.services.volume import microversion as mv
from edgefed.services.volume.cinder import CINDER, ZONE, boolean
from edgefed.services.volume.types import VOLUME_TYPE, types_of
from edgefed.store.volume import VolumeQuotas

QUOTA_DEFAULTS = {
    "volumes": 10,
    "snapshots": 10,
    "gigabytes": 1000,
    "backups": 10,
    "backup_gigabytes": 1000,
    "per_volume_gigabytes": -1,
    "groups": 10,
}
PER_TYPE = ("volumes", "gigabytes", "snapshots")
MAX_INT = 2**31 - 1
router = APIRouter(route_class=DeclaredRoute)


async def defaults(call: Call) -> dict[str, int]:
    found = dict(QUOTA_DEFAULTS)
    repo = types_of(call)
    await repo.ensure_default()
    for vtype in await repo.list():
        for kind in PER_TYPE:
            found[f"{kind}_{vtype.name}"] = -1
    return found


async def volume_limits(call: Call, project_id: str) -> dict[str, int]:
    """The project's limits: the defaults, and what an admin set."""
    return {**await defaults(call), **await VolumeQuotas(call.ctx.store).limits(project_id)}


def check_per_volume(limits: dict[str, int], size: int) -> None:
    limit = limits.get("per_volume_gigabytes", -1)
    if 0 <= limit < size:
        raise PayloadTooLarge(
            f"Requested volume size {size}G is larger than maximum allowed limit {limit}G.",
            headers={"Retry-After": "0"},
        )


def _may_read(principal: Principal, project_id: str) -> None:
    if not principal.is_admin and principal.project_id != project_id:
        raise Forbidden("Policy doesn't allow volume_extension:quotas:show to be performed.")


async def _begin(request: Request) -> Call:
    # Quota documents are about the types' service: its caller, its site.
    return await routes.begin(VOLUME_TYPE, request, "list")


@router.get("/v3/os-quota-sets/{project_id}/defaults")
async def quota_defaults(request: Request, project_id: str) -> Json:
    call = await _begin(request)
    _may_read(call.principal, project_id)
    return Json({"quota_set": {**await defaults(call), "id": project_id}})


@router.get("/v3/os-quota-sets/{project_id}")
async def show_quota(request: Request, project_id: str) -> Json:
    call = await _begin(request)
    _may_read(call.principal, project_id)
    limits = await volume_limits(call, project_id)
    found: dict[str, Any] = dict(limits)
    if boolean(call.query.get("usage", "false"), "usage"):
        used = await VolumeQuotas(call.ctx.store).usage(project_id)
        found = {
            k: {"limit": v, "in_use": used.get(k, 0), "reserved": 0} for k, v in limits.items()
        }
    return Json({"quota_set": {**found, "id": project_id}})


@router.put("/v3/os-quota-sets/{project_id}")
async def update_quota(request: Request, project_id: str) -> Json:
    call = await _begin(request)
    if not call.principal.is_admin:
        raise Forbidden("Policy doesn't allow volume_extension:quotas:update to be performed.")
    data = await read_object(request, CINDER.body, key="quota_set")
    known = await defaults(call)
    bad = sorted(k for k in data if k not in known and k not in ("id", "tenant_id"))
    if bad:
        raise BadRequest(f"Bad key(s) in quota set: {', '.join(bad)}")
    used = await VolumeQuotas(call.ctx.store).usage(project_id)
    updates: dict[str, int] = {}
    for key, value in data.items():
        if key in ("id", "tenant_id"):
            continue
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise BadRequest(f"{key} must be an integer.")
        try:
            number = int(value)
        except ValueError as exc:
            raise BadRequest(f"{key} must be an integer.") from exc
        if number < -1:
            raise BadRequest(f"{key} must be >= -1.")
        if number > MAX_INT:
            raise BadRequest(f"{key} must be <= {MAX_INT}.")
        if key != "per_volume_gigabytes" and number != -1 and number < used.get(key, 0):
            raise BadRequest(
                f"Quota {key} limit must be equal or greater than existing resources. "
                f"Current usage is {used.get(key, 0)} and the requested limit is {number}."
            )
        updates[key] = number
    await VolumeQuotas(call.ctx.store).set_limits(project_id, updates)
    return Json({"quota_set": await volume_limits(call, project_id)})


@router.delete("/v3/os-quota-sets/{project_id}")
async def reset_quota(request: Request, project_id: str) -> Response:
    call = await _begin(request)
    if not call.principal.is_admin:
        raise Forbidden("Policy doesn't allow volume_extension:quotas:delete to be performed.")
    await VolumeQuotas(call.ctx.store).reset(project_id)
    return Response(status_code=200)


@router.get("/v3/limits")
async def limits(request: Request) -> Json:
    """Cinder's absolute limits of the caller's project (3.39: an admin's ``project_id``)."""
    call = await _begin(request)
    project_id = call.principal.project_id or ""
    asked = call.query.get("project_id")
    if asked and mv.version_of(request) >= mv.Version(3, 39) and call.principal.is_admin:
        project_id = asked
    quota = await volume_limits(call, project_id)
    used = await VolumeQuotas(call.ctx.store).usage(project_id)
    return Json(
        {
            "limits": {
                "rate": [],
                "absolute": {
                    "maxTotalVolumes": quota["volumes"],
                    "maxTotalSnapshots": quota["snapshots"],
                    "maxTotalVolumeGigabytes": quota["gigabytes"],
                    "maxTotalBackups": quota["backups"],
                    "maxTotalBackupGigabytes": quota["backup_gigabytes"],
                    "totalVolumesUsed": used["volumes"],
                    "totalSnapshotsUsed": used["snapshots"],
                    "totalGigabytesUsed": used["gigabytes"],
                    "totalBackupsUsed": 0,
                    "totalBackupGigabytesUsed": 0,
                },
            }
        }
    )


@router.get("/v3/os-availability-zone")
async def availability_zones(request: Request) -> Json:
    await _begin(request)
    return Json({"availabilityZoneInfo": [{"zoneName": ZONE, "zoneState": {"available": True}}]})
