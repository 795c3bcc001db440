"""``LocalVolumes``: the volume service's side of the ``api.volumes`` port.

The compute service attaches this site's volumes through it: ``connect`` makes an
attachment with a connector (Cinder's ``attachment_create`` with one, as Nova's attach
does), ``complete`` marks it attached once the guest has the disk, ``release`` deletes
it. The connection is the backend's: a file on this site's machine, or, for a host that
cannot read it (another machine), an NBD export made for the attachment
(``export_to_host``, asked by that host's agent).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgefed.api.resource import Call
from edgefed.api.volumes import MovedVolume, VolumeConnection, VolumeFacts, VolumePool
from edgefed.core.errors import BadRequest, NotFound
from edgefed.services.volume import relocated
from edgefed.services.volume.pool import figures
from edgefed.services.volume.remote_attach import (
    NBD_KEYS,
    connect_for,
    drop,
    export,
    remote_site,
)
from edgefed.services.volume.state import VolumeState
from edgefed.services.volume.volumes import VOLUME
from edgefed.store.volume import Attachments, StateConflict, VolumeRecord, Volumes

if TYPE_CHECKING:
    from edgefed.api.auth import Principal
    from edgefed.api.context import SiteContext


def facts(record: VolumeRecord) -> VolumeFacts:
    return VolumeFacts(
        id=record.id,
        name=record.name,
        project_id=record.project_id,
        size_gb=record.size,
        status=record.status,
        bootable=record.bootable,
        multiattach=record.multiattach,
        readonly=record.readonly,
    )


class LocalVolumes:
    """This site's volumes."""

    def __init__(self, ctx: SiteContext):
        self.ctx = ctx
        self.volumes = Volumes(ctx.store)
        self.attachments = Attachments(ctx.store)

    async def _visible(self, volume_id: str, principal: Principal) -> VolumeRecord | None:
        record = await self.volumes.get(id=volume_id)
        if record is None:
            return None
        if principal.is_admin or record.project_id == principal.project_id:
            return record
        return None

    async def pool(self) -> VolumePool:
        found = await figures(self.ctx)
        return VolumePool(
            total_gb=found.total_gb,
            free_gb=found.free_gb,
            allocated_gb=found.allocated_gb,
            capacity_gb=round(found.capacity_gb, 1),
            volumes=found.volumes,
        )

    async def find(self, *, volume_id: str, principal: Principal) -> VolumeFacts | None:
        record = await self._visible(volume_id, principal)
        return facts(record) if record is not None else None

    async def create(
        self, *, principal: Principal, size_gb: int, name: str, image_id: str | None = None
    ) -> VolumeFacts:
        body: dict[str, Any] = {"size": size_gb, "name": name}
        if image_id is not None:
            body["imageRef"] = image_id
        call = Call.on_behalf(self.ctx, principal, VOLUME, body)
        return facts(await VOLUME.create(call, VOLUME.repository(call)))

    async def connect(self, *, volume_id: str, server_id: str, host: str) -> VolumeConnection:
        record = await self.volumes.get(id=volume_id)
        if record is None:
            raise NotFound(f"Volume {volume_id} could not be found.")
        mode = "ro" if record.readonly else "rw"
        backend = self.ctx.slots.require(VolumeState).backend
        info = backend.connection_info(volume_id=volume_id, mode=mode)
        try:
            attachment = await self.attachments.reserve(
                volume_id=volume_id,
                project_id=record.project_id,
                instance_uuid=server_id,
                connector={"host": host, "initiator": "edgefed", "platform": "x86_64"},
                connection_info=info,
                attach_mode=mode,
            )
        except StateConflict as exc:
            if exc.status is None:
                raise NotFound(f"Volume {volume_id} could not be found.") from exc
            wanted = "available" + (" or in-use" if record.multiattach else "")
            raise BadRequest(
                f"Invalid volume: Volume {volume_id} status must be {wanted} to attach, "
                f"but the current status is {exc.status}."
            ) from exc
        return VolumeConnection(
            attachment_id=attachment.id,
            volume_id=volume_id,
            path=Path(info["data"]["device_path"]),
            disk_format="raw",
            read_only=mode == "ro",
        )

    async def complete(self, *, attachment_id: str, mountpoint: str) -> None:
        try:
            await self.attachments.complete(attachment_id, mountpoint=mountpoint)
        except StateConflict as exc:
            raise NotFound(f"Volume attachment {attachment_id} could not be found.") from exc

    async def export_to_host(self, *, volume_id: str, server_id: str, host: str) -> dict[str, Any]:
        held = [
            a
            for a in await self.attachments.list(
                filters={"volume_id": volume_id, "instance_uuid": server_id}
            )
            if a.attached_host == host and remote_site(self.ctx, a.connector) is None
        ]
        if not held:
            raise NotFound(
                f"Server {server_id} on host {host} holds no attachment of volume {volume_id}."
            )
        record = await export(self.ctx, self.attachments, held[0], to=f"host {host}")
        data = record.connection_info["data"]
        return {key: data[key] for key in NBD_KEYS}

    async def rehost(self, *, server_id: str, host: str) -> None:
        for record in await self.attachments.list(filters={"instance_uuid": server_id}):
            if record.attached_host == host or remote_site(self.ctx, record.connector):
                continue
            try:
                await self.attachments.connect(
                    record.id,
                    connector={**(record.connector or {}), "host": host},
                    connection_info=record.connection_info or {},
                )
            except StateConflict:
                continue  # detached meanwhile

    async def connect_for_site(
        self, *, volume_id: str, server_id: str, site: str, mountpoint: str
    ) -> dict[str, Any]:
        record = await self.volumes.get(id=volume_id)
        if record is None:
            raise NotFound(f"Volume {volume_id} could not be found.")
        mode = "ro" if record.readonly else "rw"
        local = self.ctx.slots.require(VolumeState).backend.connection_info(
            volume_id=volume_id, mode=mode
        )
        connector = {"site": site, "host": f"{site}/relocated", "initiator": "edgefed",
                     "platform": "x86_64", "mountpoint": mountpoint}  # fmt: skip
        try:
            attachment = await self.attachments.reserve(
                volume_id=volume_id, project_id=record.project_id, instance_uuid=server_id,
                connector=connector, connection_info=local, attach_mode=mode,
            )  # fmt: skip
        except StateConflict as exc:
            raise BadRequest(
                f"Invalid volume: Volume {volume_id} cannot be attached for site {site}: "
                f"its status is {exc.status}."
            ) from exc
        exported = await connect_for(self.ctx, self.attachments, attachment)
        await self.complete(attachment_id=exported.id, mountpoint=mountpoint)
        data = exported.connection_info["data"]
        return {
            "attachment_id": exported.id,
            "nbd": {key: data[key] for key in NBD_KEYS},
            "read_only": mode == "ro",
        }

    async def release(self, *, attachment_id: str) -> None:
        record = await self.attachments.get(id=attachment_id)
        if record is None:
            return  # already gone
        try:
            await drop(self.ctx, self.attachments, record)  # and its export, if it has one
        except StateConflict:
            pass  # already gone

    async def delete(self, *, volume_id: str) -> None:
        try:
            await self.volumes.remove(
                volume_id,
                statuses=("available", "error"),
                cascade=False,
                snapshot_statuses=(),
            )
        except StateConflict:
            return  # gone, attached elsewhere, or has snapshots: it stays
        await self.ctx.slots.require(VolumeState).backend.delete(volume_id=volume_id)

    async def describe_for_move(self, *, volume_id: str) -> MovedVolume:
        return await relocated.describe(self.ctx, volume_id)

    async def export_for_move(self, *, volume_id: str, directory: Path) -> tuple[Path, str]:
        return await relocated.export(self.ctx, volume_id, directory)

    async def check_arrivals(
        self, *, principal: Principal, project_id: str, volumes: list[MovedVolume]
    ) -> None:
        await relocated.check_arrivals(self.ctx, principal, project_id, volumes)

    async def receive(
        self, *, project_id: str, user_id: str, volume: MovedVolume, data_file: Path,
        disk_format: str,
    ) -> None:  # fmt: skip
        await relocated.receive(
            self.ctx, project_id=project_id, user_id=user_id, volume=volume,
            data_file=data_file, disk_format=disk_format,
        )  # fmt: skip
