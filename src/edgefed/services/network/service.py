"""The network service (a minimal Neutron v2.0 under ``/network``).

Networks, subnets with IPAM, ports, security groups and their rules (a default group
per project) and quotas.
The compute service plugs servers in through the same store repository
(``edgefed.store.network``), never through this package.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request

from edgefed.api.context import site_context
from edgefed.api.responses import Json
from edgefed.api.service import CatalogEntry, DeclaredRoute, ServiceSpec, routes_of
from edgefed.core.errors import NotFound
from edgefed.services.network import quotas
from edgefed.services.network.groups import SECURITY_GROUP
from edgefed.services.network.networks import NETWORK
from edgefed.services.network.ports import PORT
from edgefed.services.network.rules import SECURITY_GROUP_RULE
from edgefed.services.network.subnets import SUBNET

RESOURCES = (
    ("network", "networks"),
    ("subnet", "subnets"),
    ("port", "ports"),
    ("security_group", "security-groups"),
    ("security_group_rule", "security-group-rules"),
    ("quota", "quotas"),
)
EXTENSIONS = (
    ("quotas", "Quota management support", "Expose functions for quotas management"),
    ("security-group", "security-group", "The security groups extension."),
    ("project-id", "project-id field", "Extension that indicates that project_id is enabled."),
    ("net-mtu", "Network MTU", "Provides MTU attribute for a network resource."),
    ("standard-attr-description", "standard-attr-description", "Extension to add descriptions"),
    ("standard-attr-timestamp", "Resource timestamps", "Adds created_at and updated_at fields"),
    ("port-security", "Port Security", "Provides port security"),
    ("binding", "Port Binding", "Expose port bindings of a virtual port to external application"),
)


def _base(request: Request) -> str:
    return f"{site_context(request).public_url}/network"


async def versions(request: Request) -> Json:
    return Json(
        {
            "versions": [
                {
                    "id": "v2.0",
                    "status": "CURRENT",
                    "links": [{"rel": "self", "href": f"{_base(request)}/v2.0/"}],
                }
            ]
        }
    )


async def resources(request: Request) -> Json:
    base = f"{_base(request)}/v2.0"
    return Json(
        {
            "resources": [
                {
                    "name": name,
                    "collection": coll,
                    "links": [{"rel": "self", "href": f"{base}/{coll}"}],
                }
                for name, coll in RESOURCES
            ]
        }
    )


def _extension(alias: str, name: str, description: str) -> dict[str, Any]:
    return {
        "alias": alias,
        "name": name,
        "description": description,
        "updated": "2013-01-01T10:00:00-00:00",
        "links": [],
    }


async def list_extensions(request: Request) -> Json:
    return Json({"extensions": [_extension(*e) for e in EXTENSIONS]})


async def show_extension(alias: str) -> Json:
    for ext in EXTENSIONS:
        if ext[0] == alias:
            return Json({"extension": _extension(*ext)})
    raise NotFound(f"Extension with alias {alias} does not exist", kind="ExtensionNotFound")


def build() -> ServiceSpec:
    router = APIRouter(route_class=DeclaredRoute)
    for path in ("", "/"):
        router.add_api_route(path, versions, methods=["GET"], include_in_schema=False)
    for path in ("/v2.0", "/v2.0/"):
        router.add_api_route(path, resources, methods=["GET"], include_in_schema=False)
    router.add_api_route("/v2.0/extensions", list_extensions, methods=["GET"])
    router.add_api_route("/v2.0/extensions/{alias}", show_extension, methods=["GET"])
    declared = (NETWORK, SUBNET, PORT, SECURITY_GROUP, SECURITY_GROUP_RULE)
    router = APIRouter(
        routes=[
            *routes_of(router),
            *(route for resource in declared for route in resource.routes()),
            *routes_of(quotas.router),
        ]
    )
    return ServiceSpec(
        name="network",
        prefix="/network",
        router=router,
        catalog=(CatalogEntry(type="network", name="neutron", path="/network"),),
    )
