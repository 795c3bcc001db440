"""Networks and subnets (with IPAM checks: CIDR, gateway, pools, overlaps)."""

from __future__ import annotations

import ipaddress
from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from edgefed.api.auth import Principal, current_principal
from edgefed.api.responses import Json
from edgefed.core.errors import BadRequest, Conflict, NotFound
from edgefed.services.network.common import (
    bad_input,
    may_change,
    may_see,
    network_view,
    owner_for,
    pick,
    read_resource,
    repo,
    require_admin_flags,
    select,
    subnet_view,
)
from edgefed.store.network import NetworkRecord, NetworkRepository, SubnetRecord, default_pools

router = APIRouter()
# Network attributes only an admin may set (Neutron's create/update_network:<attr> rules).
ADMIN_FLAGS = ("shared", "router:external")


async def find_network(
    networks: NetworkRepository, principal: Principal, network_id: str
) -> NetworkRecord:
    network = await networks.get_network(network_id)
    if network is None or not may_see(principal, network.project_id, shared=network.shared):
        raise NotFound(f"Network {network_id} could not be found.", kind="NetworkNotFound")
    return network


async def _subnet_ids(networks: NetworkRepository) -> dict[str, list[str]]:
    ids: dict[str, list[str]] = {}
    for subnet in await networks.list_subnets():
        ids.setdefault(subnet.network_id, []).append(subnet.id)
    return ids


def _flag(data: dict[str, Any], key: str, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise bad_input(f"'{value}' cannot be converted to boolean (field '{key}')")
    return value


def _text(data: dict[str, Any], key: str, default: str = "", max_len: int = 255) -> str:
    value = data.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str) or len(value) > max_len:
        raise bad_input(
            f"'{value}' is not a valid string of at most {max_len} characters (field '{key}')"
        )
    return value


@router.get("/v2.0/networks")
async def list_networks(
    request: Request, principal: Principal = Depends(current_principal)
) -> Json:
    networks = repo(request)
    ids = await _subnet_ids(networks)
    views = [
        network_view(n, ids.get(n.id, []))
        for n in await networks.list_networks()
        if may_see(principal, n.project_id, shared=n.shared)
    ]
    return Json({"networks": select(request, views)})


@router.get("/v2.0/networks/{network_id}")
async def show_network(
    network_id: str, request: Request, principal: Principal = Depends(current_principal)
) -> Json:
    networks = repo(request)
    network = await find_network(networks, principal, network_id)
    ids = await _subnet_ids(networks)
    return Json({"network": pick(request, network_view(network, ids.get(network.id, [])))})


@router.post("/v2.0/networks", status_code=201)
async def create_network(
    request: Request, principal: Principal = Depends(current_principal)
) -> Json:
    data = await read_resource(request, "network")
    project_id = owner_for(principal, data, rule="create_network")
    shared = _flag(data, "shared", False)
    external = _flag(data, "router:external", False)
    require_admin_flags(principal, data, "create_network", ADMIN_FLAGS, update=False)
    mtu = data.get("mtu", 1500)
    if not isinstance(mtu, int) or isinstance(mtu, bool) or not 68 <= mtu <= 9000:
        raise bad_input(f"'{mtu}' is not a valid MTU (68-9000) (field 'mtu')")
    network = await repo(request).create_network(
        name=_text(data, "name"),
        project_id=project_id,
        description=_text(data, "description"),
        admin_state_up=_flag(data, "admin_state_up", True),
        shared=shared,
        external=external,
        mtu=mtu,
    )
    return Json({"network": network_view(network, [])}, status_code=201)


@router.put("/v2.0/networks/{network_id}")
async def update_network(
    network_id: str, request: Request, principal: Principal = Depends(current_principal)
) -> Json:
    data = await read_resource(request, "network")
    networks = repo(request)
    network = await find_network(networks, principal, network_id)
    may_change(principal, network.project_id, rule="update_network")
    require_admin_flags(principal, data, "update_network", ADMIN_FLAGS, update=True)
    changes: dict[str, Any] = {}
    for key in ("name", "description"):
        if key in data:
            changes[key] = _text(data, key)
    if "admin_state_up" in data:
        changes["admin_state_up"] = _flag(data, "admin_state_up", True)
    if "shared" in data:
        changes["shared"] = _flag(data, "shared", False)
    if "router:external" in data:
        changes["external"] = _flag(data, "router:external", False)
    network = await networks.update_network(network.id, **changes)
    ids = await _subnet_ids(networks)
    return Json({"network": network_view(network, ids.get(network.id, []))})


@router.delete("/v2.0/networks/{network_id}", status_code=204)
async def delete_network(
    network_id: str, request: Request, principal: Principal = Depends(current_principal)
) -> Response:
    networks = repo(request)
    network = await find_network(networks, principal, network_id)
    may_change(principal, network.project_id, rule="delete_network")
    await networks.delete_network(network.id)
    return Response(status_code=204)


# -- subnets ---------------------------------------------------------------------------


async def find_subnet(
    networks: NetworkRepository, principal: Principal, subnet_id: str
) -> SubnetRecord:
    subnet = await networks.get_subnet(subnet_id)
    if subnet is not None:
        network = await networks.get_network(subnet.network_id)
        shared = network is not None and network.shared
        if may_see(principal, subnet.project_id, shared=shared):
            return subnet
    raise NotFound(f"Subnet {subnet_id} could not be found.", kind="SubnetNotFound")


def _pools(data: dict[str, Any], net: Any, gateway: str | None) -> list[dict[str, str]]:
    raw = data.get("allocation_pools")
    if raw is None:
        return default_pools(str(net), gateway)
    if not isinstance(raw, list):
        raise bad_input("allocation_pools must be a list of {start, end}")
    pools = []
    for pool in raw:
        try:
            start = ipaddress.ip_address(pool["start"])
            end = ipaddress.ip_address(pool["end"])
        except (KeyError, TypeError, ValueError) as exc:
            raise bad_input(f"invalid allocation pool {pool!r}") from exc
        if start not in net or end not in net or int(end) < int(start):
            raise BadRequest(
                f"The allocation pool {start}-{end} spans beyond the subnet cidr {net}.",
                kind="InvalidAllocationPool",
            )
        if gateway is not None and int(start) <= int(ipaddress.ip_address(gateway)) <= int(end):
            raise Conflict(
                f"Gateway ip {gateway} conflicts with allocation pool {start}-{end}.",
                kind="GatewayConflictWithAllocationPools",
            )
        pools.append({"start": str(start), "end": str(end)})
    return pools


@router.get("/v2.0/subnets")
async def list_subnets(request: Request, principal: Principal = Depends(current_principal)) -> Json:
    networks = repo(request)
    shared = {n.id for n in await networks.list_networks() if n.shared}
    views = [
        subnet_view(s)
        for s in await networks.list_subnets()
        if may_see(principal, s.project_id, shared=s.network_id in shared)
    ]
    return Json({"subnets": select(request, views)})


@router.get("/v2.0/subnets/{subnet_id}")
async def show_subnet(
    subnet_id: str, request: Request, principal: Principal = Depends(current_principal)
) -> Json:
    subnet = await find_subnet(repo(request), principal, subnet_id)
    return Json({"subnet": pick(request, subnet_view(subnet))})


@router.post("/v2.0/subnets", status_code=201)
async def create_subnet(
    request: Request, principal: Principal = Depends(current_principal)
) -> Json:
    data = await read_resource(request, "subnet")
    networks = repo(request)
    if not data.get("network_id"):
        raise bad_input("'network_id' is required")
    network = await find_network(networks, principal, str(data["network_id"]))
    may_change(principal, network.project_id, rule="create_subnet")
    raw_cidr = data.get("cidr")
    try:
        net = ipaddress.ip_network(str(raw_cidr), strict=False)
    except ValueError as exc:
        raise bad_input(f"'{raw_cidr}' is not a valid IP subnet (field 'cidr')") from exc
    if raw_cidr is None:
        raise bad_input("'cidr' is required")
    version = data.get("ip_version", net.version)
    if version not in (4, 6):
        raise bad_input(f"{version} is not in [4, 6] (field 'ip_version')")
    if version != net.version:
        raise bad_input(f"Cidr {net} does not match ip_version {version}")
    if net.num_addresses < 4 and net.version == 4:
        raise bad_input(f"Cidr {net} is too small: it leaves no address for hosts")
    for other in await networks.list_subnets(network_id=network.id):
        if ipaddress.ip_network(other.cidr).overlaps(net):
            raise bad_input(
                f"Requested subnet with cidr: {net} for network: {network.id} overlaps with "
                "another subnet"
            )
    gateway: str | None
    if "gateway_ip" in data and data["gateway_ip"] is None:
        gateway = None
    elif data.get("gateway_ip"):
        try:
            gw = ipaddress.ip_address(str(data["gateway_ip"]))
        except ValueError as exc:
            raise bad_input(
                f"'{data['gateway_ip']}' is not a valid IP address (field 'gateway_ip')"
            ) from exc
        if gw not in net:
            raise bad_input(f"Gateway IP {gw} is not in subnet {net}")
        gateway = str(gw)
    else:
        gateway = str(net.network_address + 1)
    dns = data.get("dns_nameservers", [])
    if not isinstance(dns, list):
        raise bad_input("dns_nameservers must be a list")
    for server in dns:
        try:
            ipaddress.ip_address(str(server))
        except ValueError as exc:
            raise bad_input(f"'{server}' is not a valid nameserver") from exc
    subnet = await networks.create_subnet(
        network_id=network.id,
        project_id=network.project_id,
        name=_text(data, "name"),
        description=_text(data, "description"),
        cidr=str(net),
        ip_version=net.version,
        gateway_ip=gateway,
        allocation_pools=_pools(data, net, gateway),
        dns_nameservers=[str(d) for d in dns],
        host_routes=data.get("host_routes") or [],
        enable_dhcp=_flag(data, "enable_dhcp", True),
    )
    return Json({"subnet": subnet_view(subnet)}, status_code=201)


@router.put("/v2.0/subnets/{subnet_id}")
async def update_subnet(
    subnet_id: str, request: Request, principal: Principal = Depends(current_principal)
) -> Json:
    data = await read_resource(request, "subnet")
    networks = repo(request)
    subnet = await find_subnet(networks, principal, subnet_id)
    may_change(principal, subnet.project_id, rule="update_subnet")
    changes: dict[str, Any] = {}
    for key in ("name", "description"):
        if key in data:
            changes[key] = _text(data, key)
    if "enable_dhcp" in data:
        changes["enable_dhcp"] = _flag(data, "enable_dhcp", True)
    if "dns_nameservers" in data:
        changes["dns_nameservers"] = [str(d) for d in data["dns_nameservers"] or []]
    subnet = await networks.update_subnet(subnet.id, **changes)
    return Json({"subnet": subnet_view(subnet)})


@router.delete("/v2.0/subnets/{subnet_id}", status_code=204)
async def delete_subnet(
    subnet_id: str, request: Request, principal: Principal = Depends(current_principal)
) -> Response:
    networks = repo(request)
    subnet = await find_subnet(networks, principal, subnet_id)
    may_change(principal, subnet.project_id, rule="delete_subnet")
    await networks.delete_subnet(subnet.id)
    return Response(status_code=204)
