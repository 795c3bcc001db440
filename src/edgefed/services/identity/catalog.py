"""The service catalog: every service of every fleet site, each site a Keystone region.

Generated entries come from the site's own services (``ctx.catalog_entries``) crossed
with the fleet (``ctx.fleet_sites()``); their IDs are uuid5s, so they are the same on
every site and in every response. Services and endpoints created through the API are
added after them. The rendered catalog is cached until the fleet or the identity data
changes, so putting it in a token body costs nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from edgefed.core.ids import EDGEFED_NAMESPACE
from edgefed.services.identity.state import IdentityState
from edgefed.store.identity import endpoints, services

INTERFACES = ("public", "internal", "admin")


def generated_service_id(service_type: str) -> str:
    return uuid.uuid5(EDGEFED_NAMESPACE, f"service:{service_type}").hex


def generated_endpoint_id(site: str, service_type: str, interface: str) -> str:
    return uuid.uuid5(EDGEFED_NAMESPACE, f"endpoint:{site}/{service_type}/{interface}").hex


@dataclass(frozen=True, slots=True)
class GeneratedService:
    id: str
    type: str
    name: str


@dataclass(frozen=True, slots=True)
class GeneratedEndpoint:
    id: str
    service_id: str
    region_id: str
    interface: str
    url: str


def generated_services(state: IdentityState) -> list[GeneratedService]:
    seen: dict[str, GeneratedService] = {}
    for entry in state.ctx.catalog_entries:
        sid = generated_service_id(entry.type)
        seen.setdefault(sid, GeneratedService(id=sid, type=entry.type, name=entry.name))
    return list(seen.values())


def generated_endpoints(state: IdentityState) -> list[GeneratedEndpoint]:
    found: list[GeneratedEndpoint] = []
    internal = state.ctx.settings.internal_url
    for site, public_url in sorted(state.ctx.fleet_sites().items()):
        for entry in state.ctx.catalog_entries:
            for interface in INTERFACES:
                # This site's own internal/admin endpoints may be a local address (the
                # operator next to the site keeps working when its WAN link is cut).
                local = site == state.ctx.name and interface != "public" and internal
                site_url = internal if local and internal else public_url
                found.append(
                    GeneratedEndpoint(
                        id=generated_endpoint_id(site, entry.type, interface),
                        service_id=generated_service_id(entry.type),
                        region_id=site,
                        interface=interface,
                        url=site_url.rstrip("/") + entry.path,
                    )
                )
    return found


async def token_catalog(state: IdentityState) -> list[dict[str, Any]]:
    """The catalog as it appears in a token body and in GET /v3/auth/catalog."""
    key = (tuple(sorted(state.ctx.fleet_sites().items())), state.generation)
    if state.catalog_key == key:
        return state.catalog
    by_service: dict[str, dict[str, Any]] = {}
    for svc in generated_services(state):
        by_service[svc.id] = {"endpoints": [], "id": svc.id, "type": svc.type, "name": svc.name}
    for ep in generated_endpoints(state):
        by_service[ep.service_id]["endpoints"].append(
            {
                "id": ep.id,
                "interface": ep.interface,
                "region": ep.region_id,
                "region_id": ep.region_id,
                "url": ep.url,
            }
        )
    for row in await state.repo.list_rows(services, filters={"enabled": True}):
        by_service.setdefault(
            row["id"], {"endpoints": [], "id": row["id"], "type": row["type"], "name": row["name"]}
        )
    for row in await state.repo.list_rows(endpoints, filters={"enabled": True}, order_by="id"):
        entry = by_service.get(row["service_id"])
        if entry is not None:
            entry["endpoints"].append(
                {
                    "id": row["id"],
                    "interface": row["interface"],
                    "region": row["region_id"],
                    "region_id": row["region_id"],
                    "url": row["url"],
                }
            )
    state.catalog = list(by_service.values())
    state.catalog_key = key
    return state.catalog
