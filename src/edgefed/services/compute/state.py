"""The compute service's per-site state, kept in ``SiteContext.slots`` (api/slots.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection

from edgefed.api.context import SiteContext, site_context
from edgefed.drivers.base import ComputeDriver
from edgefed.services.compute.scheduler import Scheduler
from edgefed.store.compute import (
    FlavorRepository,
    KeypairRepository,
    QuotaRepository,
    ServerRepository,
)
from edgefed.store.image import ImageRepository
from edgefed.store.network import NetworkRepository

if TYPE_CHECKING:
    from edgefed.services.compute.lifecycle import ServerLifecycle


@dataclass
class ComputeState:
    ctx: SiteContext
    driver: ComputeDriver
    scheduler: Scheduler
    lifecycle: ServerLifecycle
    flavors: FlavorRepository
    servers: ServerRepository
    keypairs: KeypairRepository
    quotas: QuotaRepository
    networks: NetworkRepository
    images: ImageRepository


async def compute_state(conn: HTTPConnection) -> ComputeState:
    return site_context(conn).slots.require(ComputeState)
