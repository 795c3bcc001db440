"""Quotas and limits: os-quota-sets, os-quota-class-sets/default and /limits.

A project's limit for a resource is its own row if it has one, else the ``default``
quota class row, else Nova's built-in default. Usage is counted from the live servers
and keypairs (Nova's counting quotas), so there are no reservations to leak.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from edgefed.api.auth import Principal, current_principal
from edgefed.api.policy import require_admin
from edgefed.api.responses import Json
from edgefed.core.errors import BadRequest, Forbidden, OverQuota
from edgefed.services.compute.body import read_json
from edgefed.services.compute.microversion import APIVersion, MicroversionRoute, api_version
from edgefed.services.compute.state import ComputeState, compute_state

router = APIRouter(route_class=MicroversionRoute)

DEFAULTS: dict[str, int] = {
    "instances": 10,
    "cores": 20,
    "ram": 51200,
    "metadata_items": 128,
    "key_pairs": 100,
    "server_groups": 10,
    "server_group_members": 10,
    "injected_files": 5,
    "injected_file_content_bytes": 10240,
    "injected_file_path_bytes": 255,
}
# Gone from the API at 2.36 (network proxies) and 2.57 (personality files).
NETWORK_PROXY = {
    "floating_ips": 10,
    "fixed_ips": -1,
    "security_groups": 10,
    "security_group_rules": 20,
}
PERSONALITY = ("injected_files", "injected_file_content_bytes", "injected_file_path_bytes")


def visible_resources(version: APIVersion) -> dict[str, int]:
    shown = dict(DEFAULTS)
    if version.at_least("2.57"):
        for key in PERSONALITY:
            shown.pop(key)
    if not version.at_least("2.36"):
        shown.update(NETWORK_PROXY)
    return shown


async def class_limits(state: ComputeState) -> dict[str, int]:
    return {**DEFAULTS, **await state.quotas.limits(kind="class", owner="default")}


async def project_limits(state: ComputeState, project_id: str) -> dict[str, int]:
    own = await state.quotas.limits(kind="project", owner=project_id)
    return {**await class_limits(state), **own}


async def project_usage(
    state: ComputeState, project_id: str, user_id: str | None
) -> dict[str, int]:
    instances, cores, ram = await state.servers.usage_by_project(project_id)
    keypairs = await state.keypairs.count(user_id=user_id) if user_id else 0
    return {"instances": instances, "cores": cores, "ram": ram, "key_pairs": keypairs}


def over_quota(resource: str, requested: int, used: int, allowed: int) -> OverQuota:
    return OverQuota(
        f"Quota exceeded for {resource}: Requested {requested}, but already used {used} "
        f"of {allowed} {resource}"
    )


async def check_server_quota(
    state: ComputeState, *, project_id: str, count: int, vcpus: int, ram: int, metadata_items: int
) -> None:
    """Raise OverQuota (403, Nova's message) if ``count`` more servers do not fit."""
    limits = await project_limits(state, project_id)
    if 0 <= limits["metadata_items"] < metadata_items:
        raise OverQuota(
            f"Quota exceeded for metadata_items: Requested {metadata_items}, but already used 0 "
            f"of {limits['metadata_items']} metadata_items"
        )
    instances, cores, used_ram = await state.servers.usage_by_project(project_id)
    for resource, requested, used in (
        ("instances", count, instances),
        ("cores", count * vcpus, cores),
        ("ram", count * ram, used_ram),
    ):
        allowed = limits[resource]
        if allowed >= 0 and used + requested > allowed:
            raise over_quota(resource, requested, used, allowed)


def _quota_body(values: dict[str, int], version: APIVersion, **extra: Any) -> dict[str, Any]:
    shown = visible_resources(version)
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
    values = await class_limits(state)
    return Json({"quota_set": _quota_body(values, api_version(request), id=project_id)})


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
    values = await project_limits(state, project_id)
    return Json({"quota_set": _quota_body(values, api_version(request), id=project_id)})


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
    values = await project_limits(state, project_id)
    return Json({"quota_set": _quota_body(values, version)})


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
    values = await class_limits(state)
    return Json({"quota_class_set": _quota_body(values, api_version(request), id=class_name)})


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
    values = await class_limits(state)
    return Json({"quota_class_set": _quota_body(values, version)})


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
