"""The catalog entities created through the API (regions, services, endpoints) and
application credentials. The generated catalog (one region per fleet site, the site's
services) is the identity service's, made from the fleet registry: never stored."""

from __future__ import annotations

from sqlalchemy import delete

from edgefed.store.identity.base import IdentityRecords
from edgefed.store.identity.records import (
    AppCredentialRecord,
    EndpointRecord,
    RegionRecord,
    ServiceRecord,
)
from edgefed.store.identity.tables import app_credentials, endpoints, regions, services
from edgefed.store.records import RecordMapper


class Regions(IdentityRecords[RegionRecord]):
    table = regions
    mapper = RecordMapper(RegionRecord)
    what = "region"
    order = ("id",)


class Services(IdentityRecords[ServiceRecord]):
    table = services
    mapper = RecordMapper(ServiceRecord)
    what = "service"

    async def delete(self, *, id: str) -> bool:
        """The service and its endpoints."""
        return await self.delete_with(id, delete(endpoints).where(endpoints.c.service_id == id))


class Endpoints(IdentityRecords[EndpointRecord]):
    table = endpoints
    mapper = RecordMapper(EndpointRecord)
    what = "endpoint"
    order = ("id",)


class AppCredentials(IdentityRecords[AppCredentialRecord]):
    table = app_credentials
    mapper = RecordMapper(AppCredentialRecord)
    what = "application_credential"
