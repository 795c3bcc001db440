"""Ports: fixed IPs allocated from the network's subnets, never the same address twice."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from edgefed.api.auth import Principal, current_principal
from edgefed.api.responses import Json
from edgefed.core.errors import NotFound
from edgefed.services.network.common import (
    bad_input,
    may_change,
    may_see,
    owner_for,
    pick,
    port_view,
    read_resource,
    repo,
    select,
)
from edgefed.services.network.networks import find_network
from edgefed.store.network import NetworkRepository, PortRecord

router = APIRouter()
MAC_RE = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")


async def find_port(networks: NetworkRepository, principal: Principal, port_id: str) -> PortRecord:
    port = await networks.get_port(port_id)
    if port is None or not may_see(principal, port.project_id):
        raise NotFound(f"Port {port_id} could not be found.", kind="PortNotFound")
    return port


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > 255:
        raise bad_input(f"'{value}' is not a valid string (field '{key}')")
    return value


@router.get("/v2.0/ports")
async def list_ports(request: Request, principal: Principal = Depends(current_principal)) -> Json:
    views = [
        port_view(p) for p in await repo(request).list_ports() if may_see(principal, p.project_id)
    ]
    return Json({"ports": select(request, views)})


@router.get("/v2.0/ports/{port_id}")
async def show_port(
    port_id: str, request: Request, principal: Principal = Depends(current_principal)
) -> Json:
    port = await find_port(repo(request), principal, port_id)
    return Json({"port": pick(request, port_view(port))})


@router.post("/v2.0/ports", status_code=201)
async def create_port(request: Request, principal: Principal = Depends(current_principal)) -> Json:
    data = await read_resource(request, "port")
    networks = repo(request)
    if not data.get("network_id"):
        raise bad_input("'network_id' is required")
    network = await find_network(networks, principal, str(data["network_id"]))
    project_id = owner_for(principal, data, rule="create_port")
    fixed = data.get("fixed_ips")
    requested: list[dict[str, str]] | None = None
    if fixed is not None:
        if not isinstance(fixed, list) or not all(isinstance(f, dict) for f in fixed):
            raise bad_input("fixed_ips must be a list of {subnet_id, ip_address}")
        requested = []
        for item in fixed:
            entry = {k: str(item[k]) for k in ("subnet_id", "ip_address") if item.get(k)}
            if not entry:
                raise bad_input(f"fixed IP {item!r} needs a subnet_id or an ip_address")
            if "subnet_id" in entry and await networks.get_subnet(entry["subnet_id"]) is None:
                raise NotFound(
                    f"Subnet {entry['subnet_id']} could not be found.", kind="SubnetNotFound"
                )
            requested.append(entry)
    mac = data.get("mac_address")
    if mac is not None and (not isinstance(mac, str) or not MAC_RE.match(mac.lower())):
        raise bad_input(f"'{mac}' is not a valid MAC address (field 'mac_address')")
    try:
        port = await networks.create_port(
            network=network,
            project_id=project_id,
            requested_ips=requested,
            name=_text(data, "name"),
            description=_text(data, "description"),
            device_id=_text(data, "device_id"),
            device_owner=_text(data, "device_owner"),
            mac_address=mac.lower() if isinstance(mac, str) else None,
            admin_state_up=bool(data.get("admin_state_up", True)),
        )
    except ValueError as exc:
        raise bad_input(f"invalid fixed IP: {exc}") from exc
    return Json({"port": port_view(port)}, status_code=201)


@router.put("/v2.0/ports/{port_id}")
async def update_port(
    port_id: str, request: Request, principal: Principal = Depends(current_principal)
) -> Json:
    data = await read_resource(request, "port")
    networks = repo(request)
    port = await find_port(networks, principal, port_id)
    may_change(principal, port.project_id, rule="update_port")
    changes: dict[str, Any] = {}
    for key in ("name", "description", "device_id", "device_owner"):
        if key in data:
            changes[key] = _text(data, key)
    if "admin_state_up" in data:
        changes["admin_state_up"] = bool(data["admin_state_up"])
    port = await networks.update_port(port.id, **changes)
    return Json({"port": port_view(port)})


@router.delete("/v2.0/ports/{port_id}", status_code=204)
async def delete_port(
    port_id: str, request: Request, principal: Principal = Depends(current_principal)
) -> Response:
    networks = repo(request)
    port = await find_port(networks, principal, port_id)
    may_change(principal, port.project_id, rule="delete_port")
    await networks.delete_port(port.id)
    return Response(status_code=204)
