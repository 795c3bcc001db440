"""Volumes of other sites, attached to this site's servers: ``{compute: Berlin, volume:
Paris}``.

A volume this site does not have is looked for at the sites the request's scope names
for ``volume``, with the caller's token (Paris decides what the caller may use there).
The attach is Cinder's attachments API at that site, as Nova calls it: an attachment
with this host's connector, which names this site, so Paris answers an NBD export made
for that attachment (address, export, TLS pre-shared key); ``os-complete`` once the
guest has the disk. The release is a call signed by this site (no user token: a
deleted server's volumes are released in the background), which Paris accepts only
for attachments whose connector names this site. A release Paris cannot be reached
for is recorded (store/compute/releases.py) and asked again until Paris answers: the
detach is done here at once, and Paris's volume says it is attached until then.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.requests import Request

from edgefed.api.auth import Principal
from edgefed.api.context import SiteContext
from edgefed.api.remote import (
    FORWARDED_HEADER,
    ask_scope,
    describe_http_error,
    describe_refusal,
    scope_entry,
)
from edgefed.api.sitecalls import signed_headers
from edgefed.core.errors import BadRequest, Conflict, NotFound, Unavailable
from edgefed.store.compute import PendingReleases

log = logging.getLogger("edgefed.compute.remote_volumes")

ATTACH_VERSION = {"OpenStack-API-Version": "volume 3.54"}


class SiteUnreachable(Conflict):
    """The volume's site did not answer (a cut link, a site down)."""


@dataclass(frozen=True, slots=True)
class RemoteVolume:
    site: str
    id: str
    status: str
    multiattach: bool


@dataclass(frozen=True, slots=True)
class RemoteConnection:
    site: str
    attachment_id: str
    nbd: dict[str, Any]
    read_only: bool


async def find_remote(
    ctx: SiteContext, request: Request, principal: Principal, volume_id: str
) -> RemoteVolume | None:
    """The volume at the scope's volume sites, or None when the request names none."""
    expr = scope_entry(request.scope, "volume")
    if expr is None:
        return None
    winner, answers = await ask_scope(
        ctx, expr, "GET", f"/volume/v3/volumes/{volume_id}", token=principal.token
    )
    if winner is None:
        tried = "; ".join(f"{a.site}: {a.reason()}" for a in answers if a.site != ctx.name)
        raise NotFound(f"Volume {volume_id} could not be found at the scope's volume sites "
                       f"({tried}).")  # fmt: skip
    shown = winner.json().get("volume") or {}
    return RemoteVolume(
        site=winner.site,
        id=volume_id,
        status=str(shown.get("status")),
        multiattach=bool(shown.get("multiattach")),
    )


async def _call(
    ctx: SiteContext, site: str, method: str, path: str, *, headers: dict[str, str], body: Any
) -> httpx.Response:
    base = ctx.fleet_sites().get(site)
    if base is None:
        raise Unavailable(f"site {site} is not in this site's fleet")
    content = json.dumps(body).encode() if body is not None else b""
    try:
        return await ctx.http.request(
            method,
            base + path,
            content=content,
            headers={"Content-Type": "application/json", FORWARDED_HEADER: ctx.name, **headers},
            timeout=ctx.settings.scope_call_timeout_seconds,
        )
    except httpx.HTTPError as exc:
        raise SiteUnreachable(f"site {site} did not answer: {describe_http_error(exc)}") from exc


async def connect_remote(
    ctx: SiteContext,
    principal: Principal,
    volume: RemoteVolume,
    *,
    server_id: str,
    host: str,
    device: str,
) -> RemoteConnection:
    """An attachment at the volume's site for this host: its NBD export."""
    # The host as "Site/host": the volume's site shows where it is attached, site and all.
    connector = {"site": ctx.name, "host": f"{ctx.name}/{host}", "mountpoint": device,
                 "initiator": "edgefed", "platform": "x86_64", "os_type": "linux",
                 "multipath": False}  # fmt: skip
    body = {"attachment": {"volume_uuid": volume.id, "instance_uuid": server_id,
                           "connector": connector}}  # fmt: skip
    headers = {"X-Auth-Token": principal.token, **ATTACH_VERSION}
    r = await _call(ctx, volume.site, "POST", "/volume/v3/attachments", headers=headers,
                    body=body)  # fmt: skip
    if r.status_code != 200:
        raise BadRequest(
            f"Volume {volume.id} cannot be attached: {describe_refusal(volume.site, r)}"
        )
    attachment = r.json()["attachment"]
    info = attachment.get("connection_info") or {}
    if info.get("driver_volume_type") != "nbd":
        await release_remote(ctx, volume.site, str(attachment["id"]))
        raise Conflict(f"Volume {volume.id} at {volume.site} was not exported to this site.")
    data = info.get("data") or {}
    return RemoteConnection(
        site=volume.site,
        attachment_id=str(attachment["id"]),
        nbd={k: data[k] for k in ("host", "port", "export", "tls_psk_identity", "tls_psk_key")},
        read_only=data.get("access_mode") == "ro",
    )


async def complete_remote(
    ctx: SiteContext, principal: Principal, site: str, attachment_id: str
) -> None:
    headers = {"X-Auth-Token": principal.token, **ATTACH_VERSION}
    path = f"/volume/v3/attachments/{attachment_id}/action"
    r = await _call(ctx, site, "POST", path, headers=headers, body={"os-complete": None})
    if r.status_code != 204:
        raise Conflict(
            f"The attachment {attachment_id} was not completed: {describe_refusal(site, r)}"
        )


async def release_remote(ctx: SiteContext, site: str, attachment_id: str) -> None:
    """Release the attachment at its site (signed by this site); SiteUnreachable when
    it cannot be reached now, Conflict when it refused."""
    path = f"/volume/v3/os-edge/attachments/{attachment_id}"
    headers = signed_headers(ctx, target=site, method="DELETE", path=path, body=b"")
    r = await _call(ctx, site, "DELETE", path, headers=headers, body=None)
    if r.status_code >= 500:
        raise SiteUnreachable(f"The attachment {attachment_id} was not released: "
                              f"{describe_refusal(site, r)}")  # fmt: skip
    if r.status_code != 204:
        raise Conflict(
            f"The attachment {attachment_id} was not released: {describe_refusal(site, r)}"
        )


async def release_owed(ctx: SiteContext) -> int:
    """Ask again for the releases other sites were not reachable for; how many are
    still owed."""
    pending = PendingReleases(ctx.store)
    left = 0
    for owed in await pending.owed():
        try:
            await release_remote(ctx, owed.site, owed.attachment_id)
        except SiteUnreachable as exc:
            await pending.failed(owed.attachment_id, exc.message)
            left += 1
            continue
        except Conflict as exc:  # refused for good (gone, or never ours): nothing to owe
            log.warning("site %s refused the release of %s: %s", owed.site,
                        owed.attachment_id, exc.message)  # fmt: skip
        await pending.done(owed.attachment_id)
        log.info("released attachment %s at %s after %d attempts", owed.attachment_id,
                 owed.site, owed.attempts + 1)  # fmt: skip
    return left


async def release_later(ctx: SiteContext) -> None:
    """The compute service's background job: owed releases, asked again every
    ``remote_release_retry_seconds``."""
    while True:
        await asyncio.sleep(max(1.0, ctx.settings.remote_release_retry_seconds))
        try:
            await release_owed(ctx)
        except Exception:  # one bad round must not end the job
            log.exception("asking again for owed volume releases")
