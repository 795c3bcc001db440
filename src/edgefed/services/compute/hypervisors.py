"""os-hypervisors and os-availability-zone: the scheduler's hosts and their usage.

The hosts are the scheduler's: the inventory's compute hosts with the hardware their
agents reported (the settings' ``compute_hosts`` only while the inventory has none),
so ``openstack hypervisor show`` gives a real host's vCPUs, RAM and disk and what the
live servers placed there take. The hypervisor's type, version, CPU model and
accelerator (kvm or tcg) come from the driver; ``cpu_info`` is an object from 2.28 on
and a JSON string before.

Hypervisor ids are uuids from 2.53 on (uuid5 of the host name, stable across restarts)
and small integers before; from 2.53 ``hypervisor_hostname_pattern`` and
``with_servers`` take the place of the old search and servers routes; the usage fields
disappear at 2.88 and so do /statistics and /uptime, exactly as in Nova. Host
aggregates are not kept: their list is empty.
"""

from __future__ import annotations

import json
import platform
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

from fastapi import APIRouter, Depends
from starlette.requests import Request

from edgefed.api.auth import Principal, current_principal
from edgefed.api.policy import require_admin
from edgefed.api.responses import Json
from edgefed.core.errors import BadRequest, EdgefedError, NotFound
from edgefed.core.ids import EDGEFED_NAMESPACE
from edgefed.core.settings import HostSpec
from edgefed.drivers.base import HypervisorInfo
from edgefed.services.compute.listing import add_list_routes
from edgefed.services.compute.microversion import APIVersion, MicroversionRoute, api_version
from edgefed.services.compute.server_views import iso
from edgefed.services.compute.state import ComputeState, compute_state
from edgefed.store.compute import HostUsage, ServerRecord
from edgefed.store.inventory import InventoryRepository
from edgefed.store.schema import utcnow

router = APIRouter(route_class=MicroversionRoute)

TRUE_WORDS = ("1", "t", "true", "on", "y", "yes")
FALSE_WORDS = ("0", "f", "false", "off", "n", "no")


class NotSupported(EdgefedError):
    """Nova's 501 for what the hypervisor cannot tell (``raise_feature_not_supported``)."""

    status: ClassVar[int] = 501
    title: ClassVar[str] = "Not Implemented"


def cpu_info(info: HypervisorInfo, host: HostSpec, hardware: Mapping[str, Any]) -> dict[str, Any]:
    """What guests get of the host's CPU, as Nova's libvirt driver says it, and how
    they run (``accel``: kvm or tcg for QEMU)."""
    model = info.cpu_model
    lowered = model.lower()
    vendor = "Intel" if "intel" in lowered else "AMD" if "amd" in lowered else "unknown"
    return {
        "arch": str(hardware.get("machine") or platform.machine() or "unknown"),
        "model": model,
        "vendor": vendor,
        "topology": {"cells": 1, "sockets": 1, "cores": host.vcpus, "threads": 1},
        "features": [],
        "accel": info.accel,
    }


def strict_bool(value: str, name: str) -> bool:
    if value.lower() in TRUE_WORDS:
        return True
    if value.lower() in FALSE_WORDS:
        return False
    raise BadRequest(
        f"Invalid input for query parameters {name}. Value: {value}. "
        f"'{value}' is not a valid boolean (one of {', '.join(TRUE_WORDS + FALSE_WORDS)})"
    )


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
    hardware: Mapping[str, Any],
    servers: list[ServerRecord] | None,
) -> dict[str, Any]:
    refusal = state.scheduler.source.refusal(host.name)
    view: dict[str, Any] = {
        "id": hypervisor_id(host, index, version),
        "hypervisor_hostname": host.name,
        "state": "down" if refusal and "locked" not in refusal else "up",
        "status": "disabled" if refusal else "enabled",
    }
    if servers is not None:
        view["servers"] = [{"name": s.name, "uuid": s.id} for s in servers]
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
    cpu = cpu_info(info, host, hardware)
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
            "cpu_info": cpu if version.at_least("2.28") else json.dumps(cpu),
        }
    )
    return view


async def _all(
    state: ComputeState,
    version: APIVersion,
    *,
    detail: bool,
    pattern: str | None = None,
    with_servers: bool = False,
) -> list[dict[str, Any]]:
    await state.scheduler.refresh()
    usages = await state.servers.host_usages()
    hardware = {
        h.hostname: h.hardware or {}
        for h in await InventoryRepository(state.ctx.store).list_hosts()
    }
    on_host: dict[str, list[ServerRecord]] = {}
    if with_servers:
        for server in await state.servers.list_all(project_id=None):
            if server.host:
                on_host.setdefault(server.host, []).append(server)
    views = []
    for i, host in enumerate(state.scheduler.source.hosts()):
        if pattern is not None and pattern not in host.name:
            continue
        views.append(
            _view(
                state,
                host,
                i,
                usages.get(host.name, HostUsage(host=host.name)),
                version,
                detail=detail,
                hardware=hardware.get(host.name, {}),
                servers=on_host.get(host.name, []) if with_servers else None,
            )
        )
    if pattern is not None and not views:
        raise NotFound(f"No hypervisor matching '{pattern}' could be found.")
    return views


async def _listed(request: Request, state: ComputeState, *, detail: bool) -> list[dict[str, Any]]:
    """The hosts a list asks for: ``hypervisor_hostname_pattern`` and ``with_servers``
    from 2.53 on (ignored before, as Nova's older schemas let them pass)."""
    version = api_version(request)
    params = request.query_params
    pattern: str | None = None
    with_servers = False
    if version.at_least("2.53"):
        pattern = params.get("hypervisor_hostname_pattern")
        if pattern is not None and ("limit" in params or "marker" in params):
            raise BadRequest(
                "Paging over hypervisors with the hypervisor_hostname_pattern query "
                "parameter is not supported."
            )
        with_servers = strict_bool(params.get("with_servers", "false"), "with_servers")
    return await _all(state, version, detail=detail, pattern=pattern, with_servers=with_servers)


def _check_id(hypervisor: str, version: APIVersion) -> None:
    """Nova's ``_validate_id``: a uuid from 2.53 on (400), an integer before (404)."""
    if version.at_least("2.53"):
        try:
            uuid.UUID(hypervisor)
        except ValueError as exc:
            raise BadRequest(f"Invalid uuid {hypervisor}") from exc
    elif not hypervisor.isdigit():
        raise NotFound(f"Hypervisor with ID '{hypervisor}' could not be found.")


async def _list(
    request: Request, principal: Principal, state: ComputeState, *, detail: bool
) -> Json:
    rule = "list-detail" if detail else "list"
    require_admin(principal, f"os_compute_api:os-hypervisors:{rule}")
    return Json({"hypervisors": await _listed(request, state, detail=detail)})


add_list_routes(router, "/v2.1/os-hypervisors", "list_hypervisors", _list)


def _before_removal(request: Request, principal: Principal, what: str) -> APIVersion:
    """The version of a call to the hypervisor ``what`` API, which Nova removed in 2.88
    (404 from then on); before it, an admin's only."""
    version = api_version(request)
    if version.at_least("2.88"):
        raise NotFound(f"The hypervisor {what} API was removed in microversion 2.88.")
    require_admin(principal, f"os_compute_api:os-hypervisors:{what}")
    return version


@router.get("/v2.1/os-hypervisors/statistics")
async def hypervisor_statistics(
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    version = _before_removal(request, principal, "statistics")
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


async def _one(
    state: ComputeState, hypervisor: str, version: APIVersion, *, with_servers: bool = False
) -> dict[str, Any]:
    _check_id(hypervisor, version)
    for view in await _all(state, version, detail=True, with_servers=with_servers):
        if str(view["id"]) == hypervisor:
            return view
    raise NotFound(f"Hypervisor with ID '{hypervisor}' could not be found.")


@router.get("/v2.1/os-hypervisors/{hypervisor}")
async def show_hypervisor(
    hypervisor: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    require_admin(principal, "os_compute_api:os-hypervisors:show")
    version = api_version(request)
    with_servers = False
    if version.at_least("2.53"):
        raw = request.query_params.get("with_servers", "false")
        with_servers = strict_bool(raw, "with_servers")
    return Json({"hypervisor": await _one(state, hypervisor, version, with_servers=with_servers)})


@router.get("/v2.1/os-hypervisors/{hypervisor}/uptime")
async def hypervisor_uptime(
    hypervisor: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    version = _before_removal(request, principal, "uptime")
    await _one(state, hypervisor, version)
    # The agents report no uptime of their hosts; clients take 501 as "not known".
    raise NotSupported("Virt driver does not implement host uptime function.")


@router.get("/v2.1/os-aggregates")
async def list_aggregates(
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    """No host aggregates here (zones come from the settings): the empty list that
    ``openstack hypervisor show`` reads to name a host's aggregates."""
    require_admin(principal, "os_compute_api:os-aggregates:index")
    return Json({"aggregates": []})


@router.get("/v2.1/os-aggregates/{aggregate_id}")
async def show_aggregate(
    aggregate_id: str,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    require_admin(principal, "os_compute_api:os-aggregates:show")
    raise NotFound(f"Aggregate {aggregate_id} could not be found.")


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
