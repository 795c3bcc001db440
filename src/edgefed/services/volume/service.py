"""The volume service (Cinder's Block Storage v3 under ``/volume``): volumes, volume
types, snapshots, attachments, quotas and limits, availability zones, with Cinder's
microversions (microversion.py), its data held by a ``VolumeBackend`` (backend.py).

Registered in the catalog as ``volumev3`` and ``block-storage`` (openstacksdk, and so
the ``openstack`` CLI, looks for the latter first, then the former).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter
from starlette.requests import Request

from edgefed.api.context import SiteContext, site_context
from edgefed.api.responses import Json
from edgefed.api.service import CatalogEntry, DeclaredRoute, ServiceSpec, routes_of
from edgefed.services.volume import attachments, metadata, quotas, snapshots, types, volumes
from edgefed.services.volume.actions import volume_action
from edgefed.services.volume.backend import FileVolumeBackend
from edgefed.services.volume.catalog import LocalVolumes
from edgefed.services.volume.exports import NbdExports
from edgefed.services.volume.microversion import version_document, versioned
from edgefed.services.volume.remote_attach import release_for_site, restore_exports
from edgefed.services.volume.state import VolumeState


async def all_versions(request: Request) -> Json:
    """The versions this API offers (Cinder answers them 300 Multiple Choices)."""
    return Json(version_document(f"{site_context(request).public_url}/volume"), status_code=300)


async def v3_versions(request: Request) -> Json:
    return Json(version_document(f"{site_context(request).public_url}/volume"))


async def _on_start(ctx: SiteContext) -> None:
    backend = FileVolumeBackend(ctx.settings.data_dir / "volumes")
    exports = NbdExports(
        ctx.settings.data_dir / "volumes" / "exports",
        bind_host=ctx.settings.host,
        advertised_host=(
            ctx.settings.volume_export_host
            or urlsplit(ctx.public_url).hostname
            or ctx.settings.host
        ),
        ports=ctx.settings.volume_export_port_range,
    )
    ctx.slots.put(VolumeState(backend=backend, host=f"{ctx.name}@file#file", exports=exports))
    ctx.volumes = LocalVolumes(ctx)
    await restore_exports(ctx)


def build() -> ServiceSpec:
    plain = APIRouter(route_class=DeclaredRoute)
    for path in ("", "/"):
        plain.add_api_route(path, all_versions, methods=["GET"], include_in_schema=False)
    for path in ("/v3", "/v3/"):
        plain.add_api_route(path, v3_versions, methods=["GET"], include_in_schema=False)
    # the hand-written routes (the kit's ``/detail`` lists: detail_list)
    first = APIRouter(route_class=DeclaredRoute)
    first.add_api_route(
        "/v3/volumes/{volume_id}", volumes.delete_volume, methods=["DELETE"], status_code=202
    )
    first.add_api_route("/v3/volumes/{volume_id}/action", volume_action, methods=["POST"])
    first.add_api_route(
        "/v3/snapshots/{snapshot_id}", snapshots.delete_snapshot, methods=["DELETE"],
        status_code=202,
    )  # fmt: skip
    first.add_api_route(
        "/v3/attachments/{attachment_id}", attachments.update_attachment, methods=["PUT"]
    )
    first.add_api_route(
        "/v3/attachments/{attachment_id}", attachments.delete_attachment, methods=["DELETE"]
    )
    first.add_api_route(
        "/v3/attachments/{attachment_id}/action", attachments.attachment_action,
        methods=["POST"], status_code=204,
    )  # fmt: skip
    first.add_api_route(  # a fleet site releases what its hosts hold (signed, no token)
        "/v3/os-edge/attachments/{attachment_id}", release_for_site, methods=["DELETE"],
        status_code=204,
    )  # fmt: skip
    api = [
        *routes_of(first),
        *volumes.VOLUME.routes(),
        *snapshots.SNAPSHOT.routes(),
        *routes_of(metadata.router, types.router),
        *types.VOLUME_TYPE.routes(),
        *attachments.ATTACHMENT.routes(),
        *routes_of(quotas.router),
    ]
    router = APIRouter(routes=[*routes_of(plain), *versioned(api)])
    return ServiceSpec(
        name="volume",
        prefix="/volume",
        router=router,
        catalog=(
            CatalogEntry(type="block-storage", name="cinder", path="/volume/v3"),
            CatalogEntry(type="volumev3", name="cinderv3", path="/volume/v3"),
        ),
        on_start=_on_start,
    )
