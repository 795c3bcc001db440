"""Where a boot's image comes from: this site, or the sites the request's scope names.

Booting in Berlin with ``{compute: Berlin, image: Denver}`` makes Berlin's compute ask
Denver's image service for the image, download its data (resuming after cuts),
check its sha512 against the ``os_hash_value`` Denver advertises, and keep it —
with its metadata and the same ID — in Berlin's own image store, marked as coming from
Denver (so it is locked against local edits). The next boot of that image in Berlin
needs no Denver at all.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from starlette.requests import Request

from edgefed.api.auth import Principal
from edgefed.api.context import SiteContext
from edgefed.api.remote import ask_scope, download, scope_entry
from edgefed.core.errors import BadRequest, Conflict, EdgefedError
from edgefed.store.image import ImageRecord, ImageRepository

log = logging.getLogger("edgefed.compute.images")

COPIED_FIELDS = ("name", "disk_format", "container_format", "min_disk", "min_ram")
CORE_FIELDS = {
    "id",
    "name",
    "status",
    "visibility",
    "protected",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "size",
    "virtual_size",
    "owner",
    "created_at",
    "updated_at",
    "file",
    "self",
    "schema",
    "tags",
    "min_disk",
    "min_ram",
    "disk_format",
    "container_format",
    "os_hidden",
    "direct_url",
    "locations",
    "stores",
    "os_glance_failed_import",
    "os_glance_importing_to_stores",
    "os-scope:site",
}


async def image_for_boot(
    ctx: SiteContext,
    images: ImageRepository,
    request: Request,
    principal: Principal,
    image_id: str,
) -> ImageRecord | None:
    """The image to boot: the local one, or one fetched and cached from the scope's sites."""
    local = await images.get(image_id)
    if local is not None:
        return local
    expr = scope_entry(request.scope, "image")
    if expr is None:
        return None
    winner, answers = await ask_scope(
        ctx, expr, "GET", f"/image/v2/images/{image_id}", token=principal.token
    )
    if winner is None:
        tried = "; ".join(f"{a.site}: {a.reason()}" for a in answers if a.site != ctx.name)
        raise BadRequest(
            f"Image {image_id} could not be found at the scope's image sites ({tried})."
        )
    meta: dict[str, Any] = winner.json()
    if meta.get("status") != "active":
        raise BadRequest(f"Image {image_id} at {winner.site} is not active.")
    return await _cache(ctx, images, principal, winner.site, meta)


async def _cache(
    ctx: SiteContext,
    images: ImageRepository,
    principal: Principal,
    site: str,
    meta: dict[str, Any],
) -> ImageRecord:
    image_id = str(meta["id"])
    tmp = ctx.settings.data_dir / "images" / "incoming" / f"{image_id}.part"
    try:
        digest = await download(
            ctx,
            site,
            f"/image/v2/images/{image_id}/file",
            tmp,
            token=principal.token,
            expected_size=meta.get("size"),
        )
        if meta.get("os_hash_algo") == "sha512" and digest != meta.get("os_hash_value"):
            raise BadRequest(
                f"Image {image_id} from {site} failed its integrity check "
                f"(sha512 {digest[:16]}… != advertised {str(meta.get('os_hash_value'))[:16]}…)."
            )
        properties = {k: v for k, v in meta.items() if k not in CORE_FIELDS}
        try:
            record = await images.create(
                owner=meta.get("owner"),
                image_id=image_id,
                visibility=str(meta.get("visibility") or "shared"),
                tags=meta.get("tags") or [],
                properties=properties,
                origin=site,
                data_file=tmp,
                data_dir=ctx.settings.data_dir,
                max_bytes=ctx.settings.max_image_bytes,
                **{k: meta[k] for k in COPIED_FIELDS if meta.get(k) is not None},
            )
        except Conflict:
            # Another boot cached it meanwhile.
            existing = await images.get(image_id)
            if existing is None:
                raise
            record = existing
        log.info("cached image %s from %s (%s bytes)", image_id, site, meta.get("size"))
        return record
    except EdgefedError:
        raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
