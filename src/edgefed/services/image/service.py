"""The image service (Glance v2) of one site: its routers and its start-up recovery.

At start, uploads that a crash interrupted go back to ``queued`` and their partial
temp files are removed, so a client can simply upload again.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter

from edgefed.api.context import SiteContext
from edgefed.api.service import CatalogEntry, ServiceSpec, routes_of
from edgefed.services.image import images, schemas, versions
from edgefed.services.image.catalog import LocalImages
from edgefed.services.image.members import MEMBER
from edgefed.store.image import ImageData

log = logging.getLogger("edgefed.image")


async def _on_start(ctx: SiteContext) -> None:
    ctx.images = LocalImages(ctx)
    recovered = await ImageData(ctx.store).recover(data_dir=ctx.settings.data_dir)
    if recovered:
        log.warning("%d interrupted image upload(s) put back to queued", recovered)


def build() -> ServiceSpec:
    # A fresh root router per app (including the parts into the module's versions
    # router grew it on every build: one app after another in a process piled up
    # routes and nested lifespans until a RecursionError). The image routes come
    # first, the busiest: a request's route is found by trying them in order, and no
    # path of one part matches a path of another.
    router = APIRouter(
        routes=[
            *routes_of(images.router),
            *images.IMAGE.routes(),
            *routes_of(versions.router, schemas.router),
            *MEMBER.routes(),
        ]
    )
    return ServiceSpec(
        name="image",
        prefix="/image",
        router=router,
        catalog=(CatalogEntry(type="image", name="glance", path="/image"),),
        on_start=_on_start,
    )
