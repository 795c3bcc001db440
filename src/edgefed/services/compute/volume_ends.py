"""Where a server's volume lives, seen from the compute service: this site's volume
service (through the ``api.volumes`` port) or another site's (remote_volumes.py).

Both ends answer the same three steps of an attach: ``connect`` (an attachment for the
server's host, and the device the driver plugs), ``complete`` (the guest has it),
``release`` (the attachment goes: at a detach, a failed attach, a deleted server).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from edgefed.api.auth import Principal
from edgefed.api.context import SiteContext
from edgefed.api.volumes import VolumeCatalog
from edgefed.core.errors import BadRequest
from edgefed.drivers.base import VolumeDevice
from edgefed.services.compute.remote_volumes import (
    RemoteVolume,
    SiteUnreachable,
    complete_remote,
    connect_remote,
    release_remote,
)
from edgefed.store.compute import PendingReleases, ServerRecord, VolumeMapping


class VolumeEnd(Protocol):
    async def connect(
        self, mapping: VolumeMapping, server: ServerRecord
    ) -> tuple[VolumeDevice, dict[str, Any]]:
        """(what the driver plugs, what the server's mapping records of it)."""
        ...

    async def complete(self, mapping: VolumeMapping) -> None: ...

    async def release(self, attachment_id: str) -> None: ...

    async def delete(self, volume_id: str) -> None:
        """Delete a volume no server uses (``delete_on_termination``)."""
        ...


class LocalEnd:
    def __init__(self, catalog: VolumeCatalog):
        self.catalog = catalog

    async def connect(
        self, mapping: VolumeMapping, server: ServerRecord
    ) -> tuple[VolumeDevice, dict[str, Any]]:
        conn = await self.catalog.connect(
            volume_id=mapping.volume_id, server_id=server.id, host=server.host or ""
        )
        device = VolumeDevice(volume_id=mapping.volume_id, path=conn.path,
                              disk_format=conn.disk_format, read_only=conn.read_only)  # fmt: skip
        return device, {"attachment_id": conn.attachment_id, "path": str(conn.path),
                        "disk_format": conn.disk_format, "read_only": conn.read_only}  # fmt: skip

    async def complete(self, mapping: VolumeMapping) -> None:
        assert mapping.attachment_id is not None
        await self.catalog.complete(attachment_id=mapping.attachment_id, mountpoint=mapping.device)

    async def release(self, attachment_id: str) -> None:
        await self.catalog.release(attachment_id=attachment_id)

    async def delete(self, volume_id: str) -> None:
        await self.catalog.delete(volume_id=volume_id)


class RemoteEnd:
    """A volume of ``site``; ``principal`` (the caller) for connect and complete, none
    needed to release (a signed call of this site)."""

    def __init__(self, ctx: SiteContext, site: str, principal: Principal | None = None):
        self.ctx = ctx
        self.site = site
        self.principal = principal

    def _caller(self) -> Principal:
        if self.principal is None:
            raise BadRequest(f"attaching a volume of {self.site} needs the caller's token")
        return self.principal

    async def connect(
        self, mapping: VolumeMapping, server: ServerRecord
    ) -> tuple[VolumeDevice, dict[str, Any]]:
        volume = RemoteVolume(site=self.site, id=mapping.volume_id, status="", multiattach=False)
        conn = await connect_remote(self.ctx, self._caller(), volume, server_id=server.id,
                                    host=server.host or "", device=mapping.device)  # fmt: skip
        device = VolumeDevice(volume_id=mapping.volume_id, path=Path(""),
                              read_only=conn.read_only, nbd=conn.nbd)  # fmt: skip
        return device, {"attachment_id": conn.attachment_id, "site": self.site, "nbd": conn.nbd,
                        "read_only": conn.read_only}  # fmt: skip

    async def complete(self, mapping: VolumeMapping) -> None:
        assert mapping.attachment_id is not None
        await complete_remote(self.ctx, self._caller(), self.site, mapping.attachment_id)

    async def release(self, attachment_id: str) -> None:
        try:
            await release_remote(self.ctx, self.site, attachment_id)
        except SiteUnreachable as exc:  # owed: asked again until the site answers
            await PendingReleases(self.ctx.store).add(
                attachment_id=attachment_id, site=self.site, error=exc.message
            )

    async def delete(self, volume_id: str) -> None:
        """Another site's volume stays: only its owners delete it, at that site."""


def end_of(
    ctx: SiteContext, mapping: VolumeMapping, principal: Principal | None = None
) -> VolumeEnd | None:
    """The end holding the mapping's volume (None: a site without a volume service)."""
    if mapping.site is not None and mapping.site != ctx.name:
        return RemoteEnd(ctx, mapping.site, principal)
    return LocalEnd(ctx.volumes) if ctx.volumes is not None else None
