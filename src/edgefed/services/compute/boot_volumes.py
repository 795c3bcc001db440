"""The volumes of a server being built: made when the boot is accepted, connected and
completed around the spawn, released at the delete.

At the create (before the 202), volumes to be made of an image or empty are created
through the volume port, as the caller: a quota or an image that does not fit is the
caller's 4xx now, not an ERROR server later. Each volume the server gets is recorded on
it (``attaching``), the root volume as ``/dev/vda``. The build connects each (an
attachment, the volume ``attaching``) before the spawn, so the guest starts with its
disks, and completes them once it runs. A build recovered after a crash connects again
what was left ``attaching``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from edgefed.api.auth import Principal
from edgefed.api.volumes import VolumeCatalog
from edgefed.core.errors import EdgefedError
from edgefed.services.compute.block_devices import VolumeRequest
from edgefed.services.compute.volume_ends import VolumeEnd
from edgefed.store.compute import (
    DEVICE_NAMES,
    ServerRecord,
    ServerVolumes,
    VolumeMapping,
    mappings_of,
)

log = logging.getLogger("edgefed.compute.volumes")

# Where a mapping's volume lives (None: nowhere this site can reach).
EndFor = Callable[[VolumeMapping], VolumeEnd | None]


async def initial_mappings(
    catalog: VolumeCatalog, principal: Principal, asked: list[VolumeRequest]
) -> list[VolumeMapping]:
    """The server's volumes, the ones to make made; those made are deleted again when a
    later one cannot be."""
    made: list[str] = []
    mappings: list[VolumeMapping] = []
    taken = {"/dev/vda"}
    try:
        for request in sorted(asked, key=lambda r: not r.root):
            volume_id = request.volume_id
            if volume_id is None:
                assert request.size_gb is not None  # checked by parse_block_devices
                facts = await catalog.create(
                    principal=principal,
                    size_gb=request.size_gb,
                    name="",
                    image_id=request.image_id,
                )
                volume_id = facts.id
                made.append(volume_id)
            if request.root:
                device = "/dev/vda"
            elif request.device is not None and request.device not in taken:
                device = request.device
            else:
                device = next(d for d in DEVICE_NAMES if d not in taken)
            taken.add(device)
            mappings.append(
                VolumeMapping(
                    volume_id=volume_id,
                    device=device,
                    bdm_id=str(uuid.uuid4()),
                    boot_index=request.boot_index,
                    delete_on_termination=request.delete_on_termination,
                    tag=request.tag,
                )
            )
    except BaseException:
        for volume_id in made:
            await catalog.delete(volume_id=volume_id)
        raise
    return mappings


async def connect_volumes(end_for: EndFor, repo: ServerVolumes, server: ServerRecord) -> None:
    """Give each volume not yet attached a connection for the server's host."""
    for mapping in mappings_of(server.volumes):
        end = end_for(mapping)
        if mapping.state == "attached" or end is None:
            continue
        if mapping.attachment_id is not None:  # a build interrupted: connect again
            await end.release(mapping.attachment_id)
        _, connected = await end.connect(mapping, server)
        await repo.change(server.id, mapping.volume_id, **connected)


async def complete_volumes(end_for: EndFor, repo: ServerVolumes, server_id: str) -> None:
    """The guest runs with its volumes: each attachment ``attached``."""
    for mapping in await repo.list(server_id):
        end = end_for(mapping)
        if mapping.state != "attached" and mapping.attachment_id is not None and end:
            await end.complete(mapping)
            await repo.change(server_id, mapping.volume_id, state="attached")


async def release_volumes(end_for: EndFor, server: ServerRecord) -> None:
    """A deleted server's volumes are free again (deleted, when they were to be deleted
    with it)."""
    for mapping in mappings_of(server.volumes):
        end = end_for(mapping)
        if end is None:
            continue
        try:
            if mapping.attachment_id is not None:
                await end.release(mapping.attachment_id)
            if mapping.delete_on_termination:
                await end.delete(mapping.volume_id)
        except EdgefedError as exc:  # the server goes anyway; its volume says where it was
            log.warning("releasing volume %s of deleted server %s: %s", mapping.volume_id,
                        server.id, exc)  # fmt: skip
