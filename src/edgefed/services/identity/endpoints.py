"""/v3/services and /v3/endpoints: the generated catalog (one service per service type
this site serves, three endpoints per fleet site and service) followed by the entries
created through the API, which are added to every token's catalog.

Readable by anyone authenticated; generated entries follow the fleet registry and
cannot be changed through the API (409). Deleting a service deletes its endpoints.
"""

from __future__ import annotations

from typing import Any

from edgefed.api.resource import Call
from edgefed.core.errors import ValidationFailed
from edgefed.core.ids import new_hex_id
from edgefed.services.identity.catalog import (
    CatalogResource,
    WithGenerated,
    generated_endpoints,
    generated_services,
)
from edgefed.services.identity.keystone import ENABLED, KeystonePolicy, exact
from edgefed.services.identity.regions import REGION
from edgefed.services.identity.schemas import (
    EndpointCreateBody,
    EndpointUpdateBody,
    ServiceCreateBody,
    ServiceUpdateBody,
)
from edgefed.services.identity.state import state_for
from edgefed.store.identity import EndpointRecord, Endpoints, ServiceRecord, Services

READ = KeystonePolicy(anyone={"list", "show"})


class Service(CatalogResource[ServiceRecord]):
    key = "service"
    collection_key = "services"
    path = "/v3/services"
    attributes = ("id", "type", "name", "description", "enabled")
    access = READ
    filters = exact("type", "name")
    create_body = ServiceCreateBody
    update_body = ServiceUpdateBody
    stored = Services
    generate = staticmethod(generated_services)

    async def create(self, call: Call, repo: WithGenerated[ServiceRecord]) -> ServiceRecord:
        s = call.model(ServiceCreateBody).service
        new = ServiceRecord(
            id=new_hex_id(),
            type=s.type,
            name=s.name or "",
            description=s.description or "",
            enabled=s.enabled,
            extra=s.extras(),
        )
        return await repo.create(new=new)


SERVICE = Service()


class Endpoint(CatalogResource[EndpointRecord]):
    key = "endpoint"
    collection_key = "endpoints"
    path = "/v3/endpoints"
    attributes = ("id", "interface", ("region", "region_id"), "region_id", "service_id", "url",
                  "enabled")  # fmt: skip
    access = READ
    filters = {**exact("service_id", "interface", "region_id"), **ENABLED}
    create_body = EndpointCreateBody
    update_body = EndpointUpdateBody
    stored = Endpoints
    generate = staticmethod(generated_endpoints)

    async def _check_service(self, call: Call, service_id: str) -> None:
        """An endpoint belongs to a service created through the API."""
        if await state_for(call.ctx).repos.services.get(id=service_id) is None:
            raise ValidationFailed(f"Could not find service: {service_id}.", field="service_id")

    async def create(self, call: Call, repo: WithGenerated[EndpointRecord]) -> EndpointRecord:
        e = call.model(EndpointCreateBody).endpoint
        if e.service_id in SERVICE.generated(call):
            raise SERVICE.refuse_generated(e.service_id)
        await self._check_service(call, e.service_id)
        region_id = e.region_id or e.region
        if region_id is not None:
            await REGION.find(call, region_id)
        new = EndpointRecord(
            id=new_hex_id(),
            service_id=e.service_id,
            region_id=region_id,
            interface=e.interface,
            url=e.url,
            enabled=e.enabled,
            extra=e.extras(),
        )
        return await repo.create(new=new)

    async def changes(
        self, call: Call, repo: WithGenerated[EndpointRecord], endpoint: EndpointRecord
    ) -> dict[str, Any]:
        changes = await super().changes(call, repo, endpoint)
        if "region" in changes:
            changes["region_id"] = changes.pop("region")
        if "region_id" in changes:
            await REGION.find(call, changes["region_id"])
        if "service_id" in changes:
            await self._check_service(call, changes["service_id"])
        return changes


ENDPOINT = Endpoint()
