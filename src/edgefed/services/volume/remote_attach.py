"""Attachments for hosts at other sites: the connector names the site, the connection is
an NBD export of the volume for that attachment alone (exports.py).

- ``connect_for``: after the attachment has its connector, a connector of another site
  (``{"site": "Berlin", ...}``) gets the export and ``driver_volume_type: nbd``; one of
  this site keeps the local file's connection.
- ``export``: the NBD export itself, also for a host of this site that cannot read the
  volume's file (a host on another machine: ``LocalVolumes.export_to_host``).
- ``drop``: the attachment goes, and its export with it (the key stops working).
- ``release_for_site`` (``DELETE /volume/v3/os-edge/attachments/{id}``, signed by a
  fleet site, no user token): the site whose host holds an attachment detaches it, when
  its server is deleted or its user detached it; only the site the connector names may,
  so a compromised site can release only what its own hosts use.
- ``restore_exports``: at start, exports of remote attachments run again.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from edgefed.api.context import SiteContext, site_context
from edgefed.api.sitecalls import verified_site
from edgefed.core.errors import Conflict, Forbidden, NotFound
from edgefed.services.volume.exports import ExportFailed
from edgefed.services.volume.state import VolumeState
from edgefed.store.volume import AttachmentRecord, Attachments, StateConflict

log = logging.getLogger("edgefed.volume.remote")

# What a host needs of an export's connection to plug it (QEMU's NBD client).
NBD_KEYS = ("host", "port", "export", "tls_psk_identity", "tls_psk_key")


def remote_site(ctx: SiteContext, connector: dict[str, Any] | None) -> str | None:
    """The other site a connector's host is at, or None for this site's hosts."""
    site = (connector or {}).get("site")
    return site if isinstance(site, str) and site and site != ctx.name else None


def is_exported(record: AttachmentRecord) -> bool:
    return record.connection_info.get("driver_volume_type") == "nbd"


async def connect_for(
    ctx: SiteContext, repo: Attachments, record: AttachmentRecord
) -> AttachmentRecord:
    """The attachment with the connection its connector's host can use."""
    if remote_site(ctx, record.connector) is None or is_exported(record):
        return record
    try:
        return await export(ctx, repo, record, to="another site")
    except Conflict:
        await drop(ctx, repo, record)
        raise


async def export(
    ctx: SiteContext, repo: Attachments, record: AttachmentRecord, *, to: str
) -> AttachmentRecord:
    """The attachment with an NBD connection made for it alone (the one it has, when it
    is exported already). Conflict naming the cause when the export cannot start."""
    if is_exported(record):
        return record
    state = ctx.slots.require(VolumeState)
    local = state.backend.connection_info(volume_id=record.volume_id, mode=record.attach_mode)
    try:
        data = await state.exports.open(
            attachment_id=record.id,
            volume_path=Path(local["data"]["device_path"]),
            read_only=record.attach_mode == "ro",
        )
    except ExportFailed as exc:
        await state.exports.close(record.id)  # a daemon that started after all
        raise Conflict(f"Volume {record.volume_id} cannot be exported to {to}: {exc}") from exc
    info = {"driver_volume_type": "nbd", "data": {**data, "volume_id": record.volume_id}}
    try:
        return await repo.connect(record.id, connector=record.connector, connection_info=info)
    except StateConflict as exc:
        await state.exports.close(record.id)
        raise NotFound(f"Volume attachment {record.id} could not be found.") from exc


async def drop(ctx: SiteContext, repo: Attachments, record: AttachmentRecord) -> None:
    """Delete the attachment and stop its export; StateConflict when it is gone."""
    try:
        await repo.remove(record.id)
    finally:
        if is_exported(record):
            await ctx.slots.require(VolumeState).exports.close(record.id)


async def release_for_site(request: Request) -> Response:
    ctx = site_context(request)
    sender = verified_site(request, ctx, await request.body())
    attachment_id = request.path_params["attachment_id"]
    repo = Attachments(ctx.store)
    record = await repo.get(id=attachment_id)
    if record is None:
        return Response(status_code=204)  # released already: a retry after a lost answer
    if remote_site(ctx, record.connector) != sender:
        raise Forbidden(f"Attachment {attachment_id} is not held by a host of site {sender}.")
    try:
        await drop(ctx, repo, record)
    except StateConflict:
        pass
    log.info("site %s released attachment %s of volume %s", sender, record.id, record.volume_id)
    return Response(status_code=204)


async def restore_exports(ctx: SiteContext) -> None:
    """Run again the exports of remote attachments; stop those of attachments gone."""
    state = ctx.slots.require(VolumeState)
    held = {a.id: a for a in await Attachments(ctx.store).list() if is_exported(a)}
    for attachment_id in state.exports.exported():
        if attachment_id not in held:
            await state.exports.close(attachment_id)
    for record in held.values():
        local = state.backend.connection_info(volume_id=record.volume_id, mode=record.attach_mode)
        try:
            await state.exports.restore(
                attachment_id=record.id,
                volume_path=Path(local["data"]["device_path"]),
                data=record.connection_info["data"],
            )
        except ExportFailed as exc:
            log.warning("the export of attachment %s did not start again: %s", record.id, exc)
