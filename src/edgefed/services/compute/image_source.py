"""Where a boot's image comes from: this site, or the sites the request's scope names.

Booting in Berlin with ``{compute: Berlin, image: Denver}`` makes Berlin's compute ask
Denver's image service for the image, download its data (resuming after cuts),
check its sha512 against the ``os_hash_value`` Denver advertises, and keep it —
with its metadata and the same ID — in Berlin's own image store, marked as coming from
Denver (so it is locked against local edits). The next boot of that image in Berlin
needs no Denver at all.

Only an image the caller may see boots (Glance's visibility rules, as Nova gets them by
asking Glance with the user's token): its owner project, ``public`` and ``community``
images, a ``shared`` image to the projects it was shared with, everything to an admin.
Anything else is answered as if it did not exist. A fetch from another site sends the
caller's token, so that site applies the same rules to its own images; a copy kept here
of another site's image (``origin``) that the local rules do not show to the caller is
shown only if its origin still shows it to that caller (its member list lives there).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import httpx
from starlette.requests import Request

from edgefed.api.auth import Principal
from edgefed.api.context import SiteContext
from edgefed.api.remote import FORWARDED_HEADER, ask_scope, download, scope_entry
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
    """The image to boot if the caller may see it: the local one, or one fetched and
    cached from the scope's sites; None when there is none the caller may see."""
    local = await images.get(image_id)
    if local is not None:
        if await may_boot(images, principal, local):
            return local
        if local.origin is not None and await _origin_shows(ctx, principal, local):
            return local
        return None
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


async def may_boot(images: ImageRepository, principal: Principal, image: ImageRecord) -> bool:
    """Glance's visibility rules for the caller's project (image/access.py says the same
    for the image API; the services do not import each other)."""
    if principal.is_admin:
        return True
    project_id = principal.project_id
    if project_id is not None and image.owner == project_id:
        return True
    if image.visibility in ("public", "community"):
        return True
    if image.visibility == "shared" and project_id is not None:
        return await images.member(image.id, project_id) is not None
    return False


async def _origin_shows(ctx: SiteContext, principal: Principal, image: ImageRecord) -> bool:
    """Whether the site this copy came from shows the image to the caller."""
    base = ctx.fleet_sites().get(image.origin or "")
    if base is None or image.origin == ctx.name:
        return False
    try:
        r = await ctx.http.get(
            f"{base}/image/v2/images/{image.id}",
            headers={"X-Auth-Token": principal.token, FORWARDED_HEADER: ctx.name},
            timeout=ctx.settings.scope_call_timeout_seconds,
        )
    except httpx.HTTPError as exc:
        log.info("cannot ask %s whether image %s is visible: %r", image.origin, image.id, exc)
        return False
    return r.status_code == 200


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
