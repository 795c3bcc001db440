"""os-hypervisors and os-availability-zone: the scheduler's hosts and their usage.

Hypervisor ids are uuids from 2.53 on (uuid5 of the host name, stable across restarts)
and small integers before; the usage fields disappear at 2.88 and so does /statistics,
exactly as in Nova.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request

from edgefed.api.auth import Principal, current_principal
from edgefed.api.policy import require_admin
from edgefed.api.responses import Json
from edgefed.core.errors import NotFound
from edgefed.core.ids import EDGEFED_NAMESPACE
from edgefed.core.settings import HostSpec
from edgefed.services.compute.microversion import APIVersion, MicroversionRoute, api_version
from edgefed.services.compute.server_views import iso
from edgefed.services.compute.state import ComputeState, compute_state
from edgefed.store.compute import HostUsage
from edgefed.store.schema import utcnow

router = APIRouter(route_class=MicroversionRoute)


def hypervisor_id(host: HostSpec, index: int, version: APIVersion) -> Any:
    if version.at_least("2.53"):
        return str(uuid.uuid5(EDGEFED_NAMESPACE, f"hypervisor:{host.name}"))
    return index + 1


def service_id(host: HostSpec, index: int, version: APIVersion) -> Any:
    if version.at_least("2.53"):
        return str(uuid.uuid5(EDGEFED_NAMESPACE, f"compute-service:{host.name}"))
    return index + 100


def _view(
    state: ComputeState,
    host: HostSpec,
    index: int,
    usage: HostUsage,
    version: APIVersion,
    *,
    detail: bool,
) -> dict[str, Any]:
    refusal = state.scheduler.source.refusal(host.name)
    view: dict[str, Any] = {
        "id": hypervisor_id(host, index, version),
        "hypervisor_hostname": host.name,
        "state": "down" if refusal and "locked" not in refusal else "up",
        "status": "disabled" if refusal else "enabled",
    }
    if not detail:
        return view
    info = state.driver.hypervisor(host.name)
    view.update(
        {
            "hypervisor_type": info.hypervisor_type,
            "hypervisor_version": info.hypervisor_version,
            "host_ip": info.host_ip,
            "service": {
                "host": host.name,
                "id": service_id(host, index, version),
                "disabled_reason": refusal,
            },
        }
    )
    if version.at_least("2.88"):
        view["uptime"] = None
        return view
    cpu_info: dict[str, Any] = {
        "arch": "x86_64",
        "model": "fake",
        "vendor": "edgefed",
        "topology": {"cores": host.vcpus, "threads": 1, "sockets": 1},
    }
    view.update(
        {
            "vcpus": host.vcpus,
            "memory_mb": host.ram_mb,
            "local_gb": host.disk_gb,
            "vcpus_used": usage.vcpus,
            "memory_mb_used": usage.ram_mb,
            "local_gb_used": usage.disk_gb,
            "free_ram_mb": host.ram_mb - usage.ram_mb,
            "free_disk_gb": host.disk_gb - usage.disk_gb,
            "current_workload": 0,
            "running_vms": usage.servers,
            "disk_available_least": host.disk_gb - usage.disk_gb,
            "cpu_info": cpu_info if version.at_least("2.28") else json.dumps(cpu_info),
        }
    )
    return view


async def _all(state: ComputeState, version: APIVersion, *, detail: bool) -> list[dict[str, Any]]:
    await state.scheduler.refresh()
    usages = await state.servers.host_usages()
    return [
        _view(
            state, host, i, usages.get(host.name, HostUsage(host=host.name)), version, detail=detail
        )
        for i, host in enumerate(state.scheduler.source.hosts())
    ]


@router.get("/v2.1/os-hypervisors")
async def list_hypervisors(
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    require_admin(principal, "os_compute_api:os-hypervisors:list")
    return Json({"hypervisors": await _all(state, api_version(request), detail=False)})


@router.get("/v2.1/os-hypervisors/detail")
async def list_hypervisors_detail(
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    require_admin(principal, "os_compute_api:os-hypervisors:list-detail")
    return Json({"hypervisors": await _all(state, api_version(request), detail=True)})


@router.get("/v2.1/os-hypervisors/statistics")
async def hypervisor_statistics(
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    version = api_version(request)
    if version.at_least("2.88"):
        raise NotFound("The hypervisor statistics API was removed in microversion 2.88.")
    require_admin(principal, "os_compute_api:os-hypervisors:statistics")
    views = await _all(state, version, detail=True)
    keys = (
        "vcpus",
        "memory_mb",
        "local_gb",
        "vcpus_used",
        "memory_mb_used",
        "local_gb_used",
        "free_ram_mb",
        "free_disk_gb",
        "current_workload",
        "running_vms",
        "disk_available_least",
    )
    stats = {k: sum(v[k] for v in views) for k in keys}
    return Json({"hypervisor_statistics": {"count": len(views), **stats}})


@router.get("/v2.1/os-hypervisors/{hypervisor}")
async def show_hypervisor(
    hypervisor: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    require_admin(principal, "os_compute_api:os-hypervisors:show")
    version = api_version(request)
    for view in await _all(state, version, detail=True):
        if str(view["id"]) == hypervisor:
            return Json({"hypervisor": view})
    raise NotFound(f"Hypervisor with ID '{hypervisor}' could not be found.")


@router.get("/v2.1/os-availability-zone")
async def list_zones(
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    zones = sorted(state.scheduler.zones())
    return Json(
        {
            "availabilityZoneInfo": [
                {"zoneName": z, "zoneState": {"available": True}, "hosts": None} for z in zones
            ]
        }
    )


@router.get("/v2.1/os-availability-zone/detail")
async def list_zones_detail(
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    require_admin(principal, "os_compute_api:os-availability-zone:detail")
    now = iso(utcnow())
    source = state.scheduler.source
    info: list[dict[str, Any]] = []
    for zone in sorted(state.scheduler.zones()):
        hosts = {
            h.name: {"nova-compute": {"available": True, "active": True, "updated_at": now}}
            for h in source.hosts()
            if source.availability_zone(h.name) == zone
        }
        info.append({"zoneName": zone, "zoneState": {"available": True}, "hosts": hosts})
    info.append(
        {
            "zoneName": "internal",
            "zoneState": {"available": True},
            "hosts": {
                state.ctx.name: {
                    "nova-conductor": {"available": True, "active": True, "updated_at": now},
                    "nova-scheduler": {"available": True, "active": True, "updated_at": now},
                }
            },
        }
    )
    return Json({"availabilityZoneInfo": info})
