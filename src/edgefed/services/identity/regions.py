"""/v3/regions: one generated region per fleet site (ID = the site name), plus created
ones. Readable by anyone authenticated; generated regions follow the fleet registry and
cannot be changed through the API (409)."""

from __future__ import annotations

from edgefed.api.resource import Call
from edgefed.core.ids import new_hex_id
from edgefed.services.identity.catalog import CatalogResource, WithGenerated, generated_regions
from edgefed.services.identity.keystone import KeystonePolicy, exact
from edgefed.services.identity.schemas import RegionCreateBody, RegionUpdateBody
from edgefed.store.identity import RegionRecord, Regions


class Region(CatalogResource[RegionRecord]):
    key = "region"
    collection_key = "regions"
    path = "/v3/regions"
    attributes = ("id", "description", "parent_region_id")
    access = KeystonePolicy(anyone={"list", "show"})
    filters = exact("parent_region_id")
    create_body = RegionCreateBody
    update_body = RegionUpdateBody
    stored = Regions
    generate = staticmethod(generated_regions)
    # A null description is empty, a null parent none (not left as they are).
    nulls_ignored = False

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


REGION = Region()
