"""The identity service: its router and lifecycle (placeholder until the service lands)."""

from __future__ import annotations

from fastapi import APIRouter

from edgefed.api.service import CatalogEntry, ServiceSpec

router = APIRouter()


def build() -> ServiceSpec:
    return ServiceSpec(
        name="identity",
        prefix="/identity",
        router=router,
        catalog=(CatalogEntry(type="identity", name="keystone", path="/identity"),),
    )
