"""Quotas and limits: os-quota-sets, os-quota-class-sets/default and /limits.

The routes read and set the limits; what a limit is and how usage is counted is
quota_limits.py's (the boots and key pairs it bounds use it too).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from edgefed.api.auth import Principal, current_principal
from edgefed.api.policy import require_admin
from edgefed.api.responses import Json
from edgefed.core.errors import BadRequest, Forbidden
from edgefed.services.compute.body import read_json
from edgefed.services.compute.microversion import APIVersion, MicroversionRoute, api_version
from edgefed.services.compute.quota_limits import (
    class_limits,
    project_limits,
    project_usage,
    visible_resources,
)
from edgefed.services.compute.state import ComputeState, compute_state

router = APIRouter(route_class=MicroversionRoute)


async def _quota_set(
    request: Request, state: ComputeState, project_id: str | None, **extra: Any
) -> dict[str, Any]:
    """The limits of ``project_id`` (of the default class when None) as Nova shows them
    at the request's version, after ``extra`` (the ``id``)."""
    if project_id is None:
        values = await class_limits(state)
    else:
        values = await project_limits(state, project_id)
    shown = visible_resources(api_version(request))
    return {**extra, **{k: values.get(k, v) for k, v in shown.items()}}


def _parse_updates(
    body: dict[str, Any], key: str, version: APIVersion
) -> tuple[dict[str, int], bool]:
    data = body.get(key)
    if not isinstance(data, dict):
        raise BadRequest(f"Invalid input: '{key}' is a required property")
    allowed = set(visible_resources(version))
    updates: dict[str, int] = {}
    force = False
    for name, raw in data.items():
        if name == "force":
            force = str(raw).lower() in ("true", "1")
            continue
        if name not in allowed:
            raise BadRequest(f"Additional properties are not allowed ('{name}' was unexpected)")
        try:
            value = int(raw)
        except (TypeError, ValueError) as exc:
            raise BadRequest(
                f"Invalid input for field/attribute {name}. Value: {raw!r}. "
                f"{raw!r} is not of type 'integer', 'string'"
            ) from exc
        if value < -1:
            raise BadRequest(
                f"Invalid input for field/attribute {name}. Value: {value}. "
                f"{value} is less than the minimum of -1"
            )
        updates[name] = value
    return updates, force


def _target_project(principal: Principal, project_id: str) -> None:
    if not principal.is_admin and principal.project_id != project_id:
        raise Forbidden("Policy doesn't allow os_compute_api:os-quota-sets:show to be performed.")


@router.get("/v2.1/os-quota-sets/{project_id}/defaults")
async def quota_defaults(
    project_id: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    return Json({"quota_set": await _quota_set(request, state, None, id=project_id)})


@router.get("/v2.1/os-quota-sets/{project_id}/detail")
async def quota_detail(
    project_id: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    _target_project(principal, project_id)
    limits = await project_limits(state, project_id)
    usage = await project_usage(state, project_id, principal.user_id)
    shown = visible_resources(api_version(request))
    body: dict[str, Any] = {"id": project_id}
    for name in shown:
        body[name] = {
            "limit": limits.get(name, shown[name]),
            "in_use": usage.get(name, 0),
            "reserved": 0,
        }
    return Json({"quota_set": body})


@router.get("/v2.1/os-quota-sets/{project_id}")
async def quota_show(
    project_id: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    _target_project(principal, project_id)
    return Json({"quota_set": await _quota_set(request, state, project_id, id=project_id)})


@router.put("/v2.1/os-quota-sets/{project_id}")
async def quota_update(
    project_id: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    require_admin(principal, "os_compute_api:os-quota-sets:update")
    version = api_version(request)
    updates, force = _parse_updates(await read_json(request), "quota_set", version)
    if not force:
        usage = await project_usage(state, project_id, None)
        for name, value in updates.items():
            used = usage.get(name, 0)
            if value != -1 and value < used:
                raise BadRequest(
                    f"Quota limit {value} for {name} must be greater than or equal to already "
                    f"used and reserved {used}."
                )
    await state.quotas.set_limits(kind="project", owner=project_id, limits=updates)
    return Json({"quota_set": await _quota_set(request, state, project_id)})


@router.delete("/v2.1/os-quota-sets/{project_id}", status_code=202)
async def quota_delete(
    project_id: str,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Response:
    require_admin(principal, "os_compute_api:os-quota-sets:delete")
    await state.quotas.reset(kind="project", owner=project_id)
    return Response(status_code=202)


@router.get("/v2.1/os-quota-class-sets/{class_name}")
async def quota_class_show(
    class_name: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    return Json({"quota_class_set": await _quota_set(request, state, None, id=class_name)})


@router.put("/v2.1/os-quota-class-sets/{class_name}")
async def quota_class_update(
    class_name: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    require_admin(principal, "os_compute_api:os-quota-class-sets:update")
    if class_name != "default":
        raise BadRequest("Only the 'default' quota class is supported.")
    version = api_version(request)
    updates, _ = _parse_updates(await read_json(request), "quota_class_set", version)
    await state.quotas.set_limits(kind="class", owner="default", limits=updates)
    return Json({"quota_class_set": await _quota_set(request, state, None)})


@router.get("/v2.1/limits")
async def limits(
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    version = api_version(request)
    project_id = principal.project_id or ""
    asked = request.query_params.get("tenant_id")
    if asked and principal.is_admin:
        project_id = asked
    q = await project_limits(state, project_id)
    usage = await project_usage(state, project_id, principal.user_id)
    absolute: dict[str, int] = {
        "maxServerMeta": q["metadata_items"],
        "maxImageMeta": q["metadata_items"],
        "maxTotalKeypairs": q["key_pairs"],
        "maxServerGroups": q["server_groups"],
        "maxServerGroupMembers": q["server_group_members"],
        "maxTotalCores": q["cores"],
        "maxTotalInstances": q["instances"],
        "maxTotalRAMSize": q["ram"],
        "totalCoresUsed": usage["cores"],
        "totalInstancesUsed": usage["instances"],
        "totalRAMUsed": usage["ram"],
        "totalServerGroupsUsed": 0,
    }
    if not version.at_least("2.57"):
        absolute["maxPersonality"] = q["injected_files"]
        absolute["maxPersonalitySize"] = q["injected_file_content_bytes"]
    if not version.at_least("2.36"):
        absolute.update(
            {
                "maxSecurityGroupRules": 20,
                "maxSecurityGroups": 10,
                "maxTotalFloatingIps": 10,
                "totalFloatingIpsUsed": 0,
                "totalSecurityGroupsUsed": 0,
            }
        )
    return Json({"limits": {"rate": [], "absolute": absolute}})
