"""The image service: its router and lifecycle (placeholder until the service lands)."""

from __future__ import annotations

from fastapi import APIRouter

from edgefed.api.service import CatalogEntry, ServiceSpec

router = APIRouter()


def build() -> ServiceSpec:
    return ServiceSpec(
        name="image",
        prefix="/image",
        router=router,
        catalog=(CatalogEntry(type="image", name="glance", path="/image"),),
    )
