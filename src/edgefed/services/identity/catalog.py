"""The service catalog: every service of every fleet site, each site a Keystone region.

Generated entries come from the site's own services (``ctx.catalog_entries``) crossed
with the fleet (``ctx.fleet_sites()``); their IDs are uuid5s, so they are the same on
every site and in every response. They are records like the stored ones, never stored:
``WithGenerated`` lists them first and finds them by id, and the resources refuse to
change them (409). Services and endpoints created through the API are added after them.
The rendered catalog is cached until the fleet or the identity data changes, so putting
it in a token body costs nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from edgefed.api.resource import Call, Filters
from edgefed.core.errors import Conflict
from edgefed.core.ids import EDGEFED_NAMESPACE
from edgefed.services.identity.keystone import KeystoneResource
from edgefed.services.identity.state import IdentityState, state_for
from edgefed.store.engine import Store
from edgefed.store.identity import EndpointRecord, IdentityRecords, RegionRecord, ServiceRecord

R = TypeVar("R")
INTERFACES = ("public", "internal", "admin")
GENERATED = "is generated from the fleet registry and cannot be changed through the API."
_COLLECTIONS = (list, tuple, set, frozenset)


def generated_service_id(service_type: str) -> str:
    return uuid.uuid5(EDGEFED_NAMESPACE, f"service:{service_type}").hex


def generated_endpoint_id(site: str, service_type: str, interface: str) -> str:
    return uuid.uuid5(EDGEFED_NAMESPACE, f"endpoint:{site}/{service_type}/{interface}").hex


def generated_regions(state: IdentityState) -> dict[str, RegionRecord]:
    """One region per fleet site, named after it."""
    return {
        name: RegionRecord(id=name, description=f"edgefed site {name}")
        for name in sorted(state.ctx.fleet_sites())
    }


def generated_services(state: IdentityState) -> dict[str, ServiceRecord]:
    """One service per type this site serves."""
    found: dict[str, ServiceRecord] = {}
    for entry in state.ctx.catalog_entries:
        sid = generated_service_id(entry.type)
        found.setdefault(sid, ServiceRecord(id=sid, type=entry.type, name=entry.name))
    return found


def generated_endpoints(state: IdentityState) -> dict[str, EndpointRecord]:
    """Three endpoints (public, internal, admin) per fleet site and service."""
    found: dict[str, EndpointRecord] = {}
    internal = state.ctx.settings.internal_url
    for site, public_url in sorted(state.ctx.fleet_sites().items()):
        for entry in state.ctx.catalog_entries:
            for interface in INTERFACES:
                # This site's own internal/admin endpoints may be a local address (the
                # operator next to the site keeps working when its WAN link is cut).
                local = site == state.ctx.name and interface != "public" and internal
                site_url = internal if local and internal else public_url
                endpoint = EndpointRecord(
                    id=generated_endpoint_id(site, entry.type, interface),
                    service_id=generated_service_id(entry.type),
                    region_id=site,
                    interface=interface,
                    url=site_url.rstrip("/") + entry.path,
                )
                found[endpoint.id] = endpoint
    return found


def _matches(record: Any, filters: Filters | None) -> bool:
    """Whether ``record`` has the values of ``filters`` (a collection: any of them)."""
    for name, value in (filters or {}).items():
        actual = getattr(record, name)
        if isinstance(value, _COLLECTIONS):
            if actual not in value:
                return False
        elif actual != value:
            return False
    return True


class WithGenerated(Generic[R]):
    """A catalog repository with the generated records first: found and listed (and
    filtered) as the stored ones are; writes go to the stored ones only."""

    def __init__(self, stored: IdentityRecords[R], generated: Mapping[str, R]):
        self.stored = stored
        self.generated = generated

    async def get(self, *, id: str) -> R | None:
        found = self.generated.get(id)
        return found if found is not None else await self.stored.get(id=id)

    async def list(
        self, *, filters: Filters | None = None, limit: int | None = None, after: str | None = None
    ) -> Sequence[R]:
        made = [record for record in self.generated.values() if _matches(record, filters)]
        return [*made, *await self.stored.list(filters=filters)]

    async def create(self, *, new: R) -> R:
        return await self.stored.create(new=new)

    async def update(self, *, id: str, changes: Mapping[str, Any]) -> R | None:
        return await self.stored.update(id=id, changes=changes)

    async def delete(self, *, id: str) -> bool:
        return await self.stored.delete(id=id)


class CatalogResource(KeystoneResource[R, WithGenerated[R]]):
    """A catalog entity: the records ``generate`` makes from the fleet (read-only: 409)
    and those of the ``stored`` repository. A null in an update leaves a field as it is."""

    stored: Callable[[Store], IdentityRecords[R]]
    generate: Callable[[IdentityState], Mapping[str, R]]
    nulls_ignored = True

    def generated(self, call: Call) -> Mapping[str, R]:
        return self.generate(state_for(call.ctx))

    def repository(self, call: Call) -> WithGenerated[R]:
        return WithGenerated(self.stored(call.ctx.store), self.generated(call))

    def refuse_generated(self, id: str) -> Conflict:
        return Conflict(f"{self.title} {id} {GENERATED}")

    def check_unlocked(self, call: Call, record: R) -> None:
        id = self.id_of(record)
        if id in self.generated(call):
            raise self.refuse_generated(id)


# An endpoint in a token's catalog: wire name, record attribute.
_ENTRY = (("id", "id"), ("interface", "interface"), ("region", "region_id"),
          ("region_id", "region_id"), ("url", "url"))  # fmt: skip


def _entry(endpoint: EndpointRecord) -> dict[str, Any]:
    return {wire: getattr(endpoint, attr) for wire, attr in _ENTRY}


async def token_catalog(state: IdentityState) -> list[dict[str, Any]]:
    """The catalog as it appears in a token body and in GET /v3/auth/catalog."""
    key = (tuple(sorted(state.ctx.fleet_sites().items())), state.generation)
    if state.catalog_key == key:
        return state.catalog
    enabled = {"enabled": True}
    services = [
        *generated_services(state).values(),
        *await state.repos.services.list(filters=enabled),
    ]
    by_service: dict[str, dict[str, Any]] = {}
    for svc in services:
        by_service.setdefault(
            svc.id, {"endpoints": [], "id": svc.id, "type": svc.type, "name": svc.name}
        )
    endpoints = [
        *generated_endpoints(state).values(),
        *await state.repos.endpoints.list(filters=enabled),
    ]
    for endpoint in endpoints:
        entry = by_service.get(endpoint.service_id)
        if entry is not None:
            entry["endpoints"].append(_entry(endpoint))
    state.catalog = list(by_service.values())
    state.catalog_key = key
    return state.catalog
