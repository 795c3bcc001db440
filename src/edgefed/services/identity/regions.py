"""/v3/regions: one generated region per fleet site (ID = the site name), plus created
ones. Readable by anyone authenticated; generated regions follow the fleet registry and
cannot be changed through the API (409)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edgefed.api.resource import Call
from edgefed.core.ids import new_hex_id
from edgefed.services.identity.catalog import CatalogResource, WithGenerated, generated_regions
from edgefed.services.identity.keystone import KeystonePolicy, changes_of, exact
from edgefed.services.identity.schemas import RegionCreateBody, RegionUpdateBody
from edgefed.services.identity.state import state_for
from edgefed.store.identity import IdentityRecords, RegionRecord


class Region(CatalogResource[RegionRecord]):
    key = "region"
    collection_key = "regions"
    path = "/v3/regions"
    attributes = ("id", "description", "parent_region_id")
    access = KeystonePolicy(anyone={"list", "show"})
    filters = exact("parent_region_id")
    create_body = RegionCreateBody
    update_body = RegionUpdateBody

    def generated(self, call: Call) -> Mapping[str, RegionRecord]:
        return generated_regions(state_for(call.ctx))

    def stored(self, call: Call) -> IdentityRecords[RegionRecord]:
        return state_for(call.ctx).repos.regions

    def view(self, region: RegionRecord, call: Call) -> dict[str, Any]:
        return {**region.extra, **self.copy(region), "links": self.links(call, region)}

    async def create(self, call: Call, repo: WithGenerated[RegionRecord]) -> RegionRecord:
        r = call.model(RegionCreateBody).region
        region_id = r.id or new_hex_id()
        if region_id in self.generated(call):
            raise self.refuse_generated(region_id)
        new = RegionRecord(
            id=region_id,
            description=r.description or "",
            parent_region_id=r.parent_region_id,
            extra=r.extras(),
        )
        return await repo.create(new=new)

    async def changes(
        self, call: Call, repo: WithGenerated[RegionRecord], region: RegionRecord
    ) -> dict[str, Any]:
        return changes_of(call.model(RegionUpdateBody).region, region.extra)


REGION = Region()
