"""The compute service: its router and lifecycle (placeholder until the service lands)."""

from __future__ import annotations

from fastapi import APIRouter

from edgefed.api.service import CatalogEntry, ServiceSpec

router = APIRouter()


def build() -> ServiceSpec:
    return ServiceSpec(
        name="compute",
        prefix="/compute",
        router=router,
        catalog=(CatalogEntry(type="compute", name="nova", path="/compute/v2.1"),),
    )
