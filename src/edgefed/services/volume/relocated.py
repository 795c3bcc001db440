"""Volumes that move to another site with their server (a relocation's ``"volumes":
"move"``, docs/relocation.md): the volume service's side at both ends.

At the source a volume is described (its type by name) and its data written out as a
file of its allocated blocks only (qcow2, which the relocation sends in its chunks);
at the destination the offer checks, as the caller, that the types exist by name and
that the project's quotas hold the volumes all together, before the source stops
anything; the commit makes each volume again with the same id (Cinder clients keep
volume ids), ``available``, from that file. The quotas are checked again then, in the
create's own transaction.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from edgefed.api.volumes import MovedVolume
from edgefed.core.errors import BadRequest, Conflict, NotFound
from edgefed.services.volume.backend import GIB, standalone
from edgefed.services.volume.cinder import ZONE, over_limit
from edgefed.services.volume.quotas import PER_TYPE, QUOTA_DEFAULTS, check_per_volume
from edgefed.services.volume.state import VolumeState
from edgefed.store.volume import (
    Demand,
    NewVolume,
    OverLimit,
    Snapshots,
    StateConflict,
    VolumeQuotas,
    Volumes,
    VolumeTypes,
)

if TYPE_CHECKING:
    from edgefed.api.auth import Principal
    from edgefed.api.context import SiteContext


async def describe(ctx: SiteContext, volume_id: str) -> MovedVolume:
    record = await Volumes(ctx.store).get(id=volume_id)
    if record is None:
        raise NotFound(f"Volume {volume_id} could not be found.")
    if await Snapshots(ctx.store).list(filters={"volume_id": volume_id}, limit=1):
        # They would stay here, and keep the volume here too (a delete refuses it).
        raise Conflict(
            f"Volume {volume_id} has snapshots, which do not move with it: delete them, or "
            'leave the volume here ("volumes": "remote").'
        )
    holders = sorted({a.instance_uuid or a.attached_host or "?" for a in record.attachments})
    if len(holders) > 1:  # the others would lose it, or keep a copy of the same id
        raise Conflict(
            f"Volume {volume_id} is attached to {', '.join(holders)}: it moves with one "
            'server only (detach it from the others, or "volumes": "remote").'
        )
    return MovedVolume(
        id=record.id, name=record.name, description=record.description, size_gb=record.size,
        volume_type=record.volume_type_name, bootable=record.bootable,
        metadata=dict(record.metadata),
    )  # fmt: skip


async def export(ctx: SiteContext, volume_id: str, directory: Path) -> tuple[Path, str]:
    backend = ctx.slots.require(VolumeState).backend
    directory.mkdir(parents=True, exist_ok=True)
    try:
        return await backend.export_image(
            volume_id=volume_id, disk_format="qcow2", directory=directory
        ), "qcow2"
    except ValueError:  # no qemu-img here: the raw file, whole
        pass
    target = directory / f"{volume_id}.raw"
    try:
        source = await backend.export_image(
            volume_id=volume_id, disk_format="raw", directory=directory
        )
        await asyncio.to_thread(shutil.copyfile, source, target)
    except (OSError, ValueError) as exc:  # the move is undone, the volume as it was
        raise Conflict(f"Volume {volume_id} cannot be written out to move: {exc}") from exc
    return target, "raw"


async def _limits(ctx: SiteContext, project_id: str) -> dict[str, int]:
    """The project's volume limits (quotas.volume_limits, without a request)."""
    found = dict(QUOTA_DEFAULTS)
    types = VolumeTypes(ctx.store)
    await types.ensure_default()
    for vtype in await types.list():
        for kind in PER_TYPE:
            found[f"{kind}_{vtype.name}"] = -1
    return {**found, **await VolumeQuotas(ctx.store).limits(project_id)}


async def check_arrivals(
    ctx: SiteContext, principal: Principal, project_id: str, volumes: list[MovedVolume]
) -> None:
    types = VolumeTypes(ctx.store)
    await types.ensure_default()  # made on first use, as a create makes it
    repo = Volumes(ctx.store)
    for volume in volumes:
        vtype = await types.by_name(volume.volume_type)
        if vtype is None or not (vtype.is_public or principal.is_admin):
            raise BadRequest(
                f"Site {ctx.name} has no volume type named {volume.volume_type!r} (volume "
                f"{volume.id} is of that type)."
            )
        if await repo.get(id=volume.id) is not None:
            raise Conflict(f"Site {ctx.name} already has a volume {volume.id}.")
    limits = await _limits(ctx, project_id)
    used = dict(await VolumeQuotas(ctx.store).usage(project_id))
    for volume in volumes:  # all of them together, as they would be made one by one
        check_per_volume(limits, volume.size_gb)
        wanted = [("volumes", 1), (f"volumes_{volume.volume_type}", 1),
                  ("gigabytes", volume.size_gb),
                  (f"gigabytes_{volume.volume_type}", volume.size_gb)]  # fmt: skip
        for resource, requested in wanted:
            limit, had = limits.get(resource, -1), used.get(resource, 0)
            if 0 <= limit < had + requested:
                exc = OverLimit(resource=resource, requested=requested, limit=limit, used=had)
                raise over_limit(exc, what="volumes")
            used[resource] = had + requested


async def _check_data(volume: MovedVolume, data_file: Path, disk_format: str) -> None:
    """The file another site sent is its volume's data alone: raw, or a qcow2 with no
    backing or external data file (which would have qemu-img copy a file of this host
    into the volume) that fits the volume's size. BadRequest naming what is wrong."""
    if disk_format == "raw":
        return
    if disk_format != "qcow2":
        raise BadRequest(f"The data of volume {volume.id} is in format {disk_format!r}.")
    try:
        info = await standalone(data_file, disk_format)
    except ValueError as exc:
        raise BadRequest(f"The data of volume {volume.id} is refused: {exc}.") from exc
    if int(info.get("virtual-size") or 0) > volume.size_gb * GIB:
        raise BadRequest(f"The data of volume {volume.id} is larger than the volume.")


async def receive(
    ctx: SiteContext,
    *,
    project_id: str,
    user_id: str,
    volume: MovedVolume,
    data_file: Path,
    disk_format: str,
) -> None:
    repo = Volumes(ctx.store)
    found = await repo.get(id=volume.id)
    if found is not None and found.status != "creating":
        return  # made by a commit asked before
    await _check_data(volume, data_file, disk_format)
    types = VolumeTypes(ctx.store)
    await types.ensure_default()
    vtype = await types.by_name(volume.volume_type)
    if vtype is None:
        raise BadRequest(f"Site {ctx.name} has no volume type named {volume.volume_type!r}.")
    if found is None:
        new = NewVolume(
            id=volume.id, project_id=project_id, user_id=user_id, size=volume.size_gb,
            availability_zone=ZONE, volume_type_id=vtype.id, status="creating",
            name=volume.name, description=volume.description, bootable=volume.bootable,
            multiattach=vtype.extra_specs.get("multiattach", "").lower() == "<is> true",
            metadata=dict(volume.metadata),
        )  # fmt: skip
        demand = Demand(kind="volumes", gigabytes=volume.size_gb, type_name=vtype.name)
        try:
            await repo.add(new=new, demand=demand, limits=await _limits(ctx, project_id))
        except OverLimit as exc:
            raise over_limit(exc, what="volumes") from exc
    backend = ctx.slots.require(VolumeState).backend
    try:
        await backend.write_image(
            volume_id=volume.id, image_file=data_file, disk_format=disk_format,
            size_gb=volume.size_gb,
        )  # fmt: skip
    except (OSError, ValueError) as exc:
        raise BadRequest(f"The data of volume {volume.id} could not be written: {exc}") from exc
    try:
        await repo.transition(
            volume.id, expect={"status": ("creating",)}, values={"status": "available"}
        )
    except StateConflict:
        pass  # made available meanwhile
