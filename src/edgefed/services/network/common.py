"""What every Neutron resource shares: request bodies, views, filters, ``fields``.

Neutron lists accept any attribute as a filter (``?name=x&shared=false``) and
``fields=`` to choose the attributes shown; both are generic here, over the views.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any

from starlette.requests import HTTPConnection, Request

from edgefed.api.auth import Principal
from edgefed.api.context import site_context
from edgefed.core.errors import BadRequest, Forbidden
from edgefed.store.network import (
    NetworkRecord,
    NetworkRepository,
    PortRecord,
    SecurityGroupRecord,
    SubnetRecord,
)

IGNORED_PARAMS = {"fields", "limit", "marker", "sort_key", "sort_dir", "page_reverse"}


def repo(conn: HTTPConnection) -> NetworkRepository:
    return NetworkRepository(site_context(conn).store)


def stamp(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


async def read_resource(request: Request, key: str) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else None
    except ValueError as exc:
        raise BadRequest("Invalid input for operation: the body is not valid JSON.") from exc
    if not isinstance(body, dict) or not isinstance(body.get(key), dict):
        raise BadRequest(f"Resource body required: expected a JSON object under '{key}'.")
    return dict(body[key])


def bad_input(message: str) -> BadRequest:
    return BadRequest(f"Invalid input for operation: {message}", kind="InvalidInput")


def policy_refused(rule: str, why: str) -> Forbidden:
    """Neutron's 403 for a policy rule, with the reason a user can act on."""
    return Forbidden(f"rule:{rule} is disallowed by policy ({why}).", kind="PolicyNotAuthorized")


def owner_for(principal: Principal, data: dict[str, Any], *, rule: str) -> str:
    """The project a new resource belongs to; the caller must be a member of it (or admin).

    Neutron's secure-RBAC defaults: creating needs the ``member`` role on the project
    (``reader`` only reads); creating for another project needs ``admin``.
    """
    asked = data.get("project_id") or data.get("tenant_id")
    if asked and asked != principal.project_id:
        if not principal.is_admin:
            raise policy_refused(rule, "only an admin can create a resource for another project")
        return str(asked)
    if principal.project_id is None and not asked:
        raise BadRequest("A project-scoped token (or project_id) is needed.")
    if not (principal.is_admin or principal.has_role("member")):
        raise policy_refused(rule, "the member role on the project is required")
    return str(asked or principal.project_id)


def may_see(principal: Principal, project_id: str, *, shared: bool = False) -> bool:
    return principal.is_admin or shared or principal.project_id == project_id


def may_change(principal: Principal, project_id: str, *, rule: str) -> None:
    """Updates and deletes: admin, or a member of the owner project (a reader only reads)."""
    if principal.is_admin:
        return
    if principal.project_id != project_id:
        raise policy_refused(rule, "the resource belongs to another project")
    if not principal.has_role("member"):
        raise policy_refused(rule, "the member role on the project is required")


def require_admin_flags(
    principal: Principal, data: dict[str, Any], rule: str, flags: tuple[str, ...], *, update: bool
) -> None:
    """Admin-only attributes (``shared``, ``router:external``), checked as Neutron's policy
    engine does: on create when set to anything but their default (false), on update
    whenever the body names them."""
    if principal.is_admin:
        return
    for flag in flags:
        if flag in data and (update or data[flag] is not False):
            raise policy_refused(f"{rule}:{flag}", f"only an admin may set '{flag}'")


def _matches(view: dict[str, Any], name: str, values: list[str]) -> bool:
    if name not in view:
        return True
    actual = view[name]
    if isinstance(actual, bool):
        return str(actual).lower() in [v.lower() for v in values]
    if isinstance(actual, list):
        return any(str(v) in [str(a) for a in actual] for v in values)
    return str(actual) in values


def select(request: Request, views: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Apply attribute filters and ``fields`` from the query string."""
    params = request.query_params
    filters = {k: params.getlist(k) for k in params if k not in IGNORED_PARAMS}
    chosen = [v for v in views if all(_matches(v, k, vals) for k, vals in filters.items())]
    fields = params.getlist("fields")
    if fields:
        chosen = [{k: v[k] for k in fields if k in v} for v in chosen]
    return chosen


def pick(request: Request, view: dict[str, Any]) -> dict[str, Any]:
    fields = request.query_params.getlist("fields")
    return {k: view[k] for k in fields if k in view} if fields else view


def network_view(network: NetworkRecord, subnet_ids: list[str]) -> dict[str, Any]:
    return {
        "id": network.id,
        "name": network.name,
        "tenant_id": network.project_id,
        "project_id": network.project_id,
        "admin_state_up": network.admin_state_up,
        "status": network.status,
        "subnets": subnet_ids,
        "shared": network.shared,
        "router:external": network.external,
        "is_default": network.is_default,
        "mtu": network.mtu,
        "description": network.description,
        "availability_zones": ["nova"],
        "availability_zone_hints": [],
        "ipv4_address_scope": None,
        "ipv6_address_scope": None,
        "port_security_enabled": True,
        "l2_adjacency": True,
        "tags": [],
        "created_at": stamp(network.created_at),
        "updated_at": stamp(network.updated_at),
        "revision_number": 0,
    }


def subnet_view(subnet: SubnetRecord) -> dict[str, Any]:
    return {
        "id": subnet.id,
        "name": subnet.name,
        "network_id": subnet.network_id,
        "tenant_id": subnet.project_id,
        "project_id": subnet.project_id,
        "cidr": subnet.cidr,
        "ip_version": subnet.ip_version,
        "gateway_ip": subnet.gateway_ip,
        "allocation_pools": subnet.allocation_pools,
        "dns_nameservers": subnet.dns_nameservers,
        "host_routes": subnet.host_routes,
        "enable_dhcp": subnet.enable_dhcp,
        "ipv6_ra_mode": None,
        "ipv6_address_mode": None,
        "subnetpool_id": None,
        "segment_id": None,
        "service_types": [],
        "description": subnet.description,
        "tags": [],
        "created_at": stamp(subnet.created_at),
        "updated_at": stamp(subnet.updated_at),
        "revision_number": 0,
    }


def port_view(port: PortRecord) -> dict[str, Any]:
    return {
        "id": port.id,
        "name": port.name,
        "network_id": port.network_id,
        "tenant_id": port.project_id,
        "project_id": port.project_id,
        "mac_address": port.mac_address,
        "admin_state_up": port.admin_state_up,
        "status": port.status,
        "device_id": port.device_id,
        "device_owner": port.device_owner,
        "fixed_ips": [
            {"subnet_id": ip.subnet_id, "ip_address": ip.ip_address} for ip in port.fixed_ips
        ],
        "security_groups": list(port.security_groups),
        "allowed_address_pairs": [],
        "extra_dhcp_opts": [],
        "binding:vnic_type": "normal",
        "port_security_enabled": True,
        "description": port.description,
        "tags": [],
        "created_at": stamp(port.created_at),
        "updated_at": stamp(port.updated_at),
        "revision_number": 0,
    }


def security_group_view(group: SecurityGroupRecord) -> dict[str, Any]:
    return {
        "id": group.id,
        "name": group.name,
        "description": group.description,
        "tenant_id": group.project_id,
        "project_id": group.project_id,
        "security_group_rules": group.rules,
        "stateful": True,
        "shared": False,
        "tags": [],
        "created_at": stamp(group.created_at),
        "updated_at": stamp(group.updated_at),
        "revision_number": 0,
    }
