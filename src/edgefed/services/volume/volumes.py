"""Volumes: create (empty, from an image, a snapshot or another volume), list (summary
and detail, filtered, sorted, paged), show, update, delete; the actions are in
``actions.py`` and ``attach_actions.py``.

A create is answered once the backend has allocated the volume and fsync'd it, so the
volume is ``available`` in the answer itself (Cinder answers ``creating`` and finishes
behind); a delete is refused, as Cinder refuses it, while the volume is attached, in a
transient status, or has snapshots (unless ``cascade=true``).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from edgefed.api.resource import Call, ProjectOwned, Resource, routes
from edgefed.core.errors import BadRequest, Forbidden
from edgefed.services.volume import microversion as mv
from edgefed.services.volume.cinder import (
    CINDER,
    ZONE,
    boolean,
    invalid_input,
    invalid_volume,
    known_only,
    metadata_items,
    optional_text,
    over_limit,
    positive_size,
    version,
)
from edgefed.services.volume.listing import bootable, listed, page_of, paged, size, written
from edgefed.services.volume.pool import check_room
from edgefed.services.volume.quotas import check_per_volume, volume_limits
from edgefed.services.volume.sources import Source, source_of
from edgefed.services.volume.state import state_of
from edgefed.services.volume.types import type_for
from edgefed.services.volume.views import EXTENSION_ATTRIBUTES, volume_view
from edgefed.store.volume import (
    Demand,
    NewVolume,
    OverLimit,
    StateConflict,
    VolumeRecord,
    Volumes,
)

CREATE_KEYS = (
    "name",
    "description",
    "display_name",
    "display_description",
    "volume_type",
    "metadata",
    "snapshot_id",
    "source_volid",
    "consistencygroup_id",
    "size",
    "availability_zone",
    "multiattach",
    "image_id",
    "imageRef",
    "group_id",
    "backup_id",
)
UPDATE_KEYS = ("name", "description", "display_name", "display_description", "metadata")
FILTERS = {
    "name": "name",
    "status": "status",
    "bootable": "bootable",
    "availability_zone": "availability_zone",
    "size": "size",
    "user_id": "user_id",
    "migration_status": "migration_status",
}
SORTABLE = ("id", "name", "status", "size", "created_at", "updated_at", "availability_zone",
            "bootable", "user_id", "project_id")  # fmt: skip
# What the list without /detail shows of a volume.
SUMMARY = ("id", "name", "links")
DELETABLE = ("available", "error", "error_restoring", "error_extending", "error_managing")
NOT_DELETABLE = (
    "Volume status must be available or error or error_restoring or error_extending or "
    "error_managing and must not be migrating, attached, belong to a group, have "
    "snapshots, awaiting a transfer, or be disassociated from snapshots after volume "
    "transfer."
)
MULTIATTACH_REMOVED = (
    "multiattach parameter has been removed. The default behavior is to use multiattach "
    "enabled volume types. Contact your administrator to create a multiattach enabled "
    "volume type and use it to create multiattach volumes."
)


def require_project(call: Call) -> str:
    principal = call.principal
    if principal.project_id is None:
        raise Forbidden("Policy doesn't allow volume:create to be performed (a project is needed).")
    if not (principal.is_admin or principal.has_role("member")):
        raise call.refuse("create", "the member role on the project is required")
    return principal.project_id


class Volume(Resource[VolumeRecord, Volumes]):
    key = "volume"
    collection_key = "volumes"
    path = "/v3/volumes"
    dialect = CINDER
    store_class = Volumes
    access = ProjectOwned[VolumeRecord](project=lambda v: v.project_id)
    verbs = frozenset({"list", "show", "create", "update"})  # delete: delete_volume
    create_status = 202
    detail_list = "List volumes with details."

    def view(self, record: VolumeRecord, call: Call) -> dict[str, Any]:
        return volume_view(record, call)

    def shape(self, call: Call, view: dict[str, Any]) -> dict[str, Any]:
        """A create's or an update's answer has no extension attributes (Cinder's
        extensions extend show and the lists only)."""
        return written(call, view, lambda name: name in EXTENSION_ATTRIBUTES)

    async def records(self, call: Call, repo: Volumes) -> list[VolumeRecord]:
        page = page_of(call, columns=FILTERS, sortable=SORTABLE,
                       parse={"bootable": bootable, "size": size})  # fmt: skip
        return await paged(call, repo.page, page)

    def collection(self, call: Call, views: list[dict[str, Any]]) -> dict[str, Any]:
        found = listed(call, "volumes", views, lambda v: {k: v[k] for k in SUMMARY})
        if version(call) >= mv.COUNT and call.query.get("with_count", "").lower() == "true":
            found["count"] = len(views)
        return found

    async def create(self, call: Call, repo: Volumes) -> VolumeRecord:
        project_id = require_project(call)
        data = await call.body()
        if version(call) >= mv.Version(3, 53):
            known_only(data, CREATE_KEYS, "volume")
        if data.get("multiattach") is not None and boolean(data["multiattach"], "multiattach"):
            raise BadRequest(MULTIATTACH_REMOVED)
        for unsupported in ("consistencygroup_id", "group_id", "backup_id"):
            if data.get(unsupported):
                raise invalid_input(f"{unsupported} is not supported on this site.")
        name = optional_text(data, "name") or optional_text(data, "display_name")
        description = optional_text(data, "description", max_len=65535) or optional_text(
            data, "display_description", max_len=65535
        )
        metadata = metadata_items(data["metadata"]) if data.get("metadata") is not None else {}
        zone = data.get("availability_zone") or ZONE
        if zone != ZONE:
            raise invalid_input(f"Availability zone '{zone}' is invalid.")
        source = await source_of(call, data)
        gigabytes = positive_size(data["size"]) if data.get("size") is not None else source.size
        if gigabytes is None:
            raise invalid_input(
                f"Invalid volume size provided for create request: {data.get('size')} (size "
                "argument must be an integer (or string representation of an integer) and "
                "greater than zero)."
            )
        source.check_size(gigabytes)
        vtype = await type_for(call, data.get("volume_type"), default=source.type_id)
        new = NewVolume(
            project_id=project_id,
            user_id=call.principal.user_id,
            size=gigabytes,
            availability_zone=zone,
            volume_type_id=vtype.id,
            # ``available`` once its data is written: a crash in between leaves the truth.
            status="creating",
            name=name,
            description=description,
            bootable=source.bootable,
            multiattach=vtype.extra_specs.get("multiattach", "").lower() == "<is> true",
            snapshot_id=source.snapshot_id,
            source_volid=source.volume_id,
            image_id=source.image_id,
            image_metadata=source.image_metadata,
            metadata=metadata,
        )
        limits = await volume_limits(call, project_id)
        check_per_volume(limits, gigabytes)
        try:
            made = await repo.add(
                new=new,
                demand=Demand(kind="volumes", gigabytes=gigabytes, type_name=vtype.name),
                limits=limits,
            )
        except OverLimit as exc:
            raise over_limit(exc, what="volumes") from exc
        try:  # after the quota, as Cinder's scheduler weighs pools after the API's quota
            await check_room(call.ctx, 0)
        except BadRequest:
            await repo.remove(made.id, statuses=("creating",), cascade=False,
                              snapshot_statuses=())  # fmt: skip
            raise
        await self._allocate(call, repo, made, source)
        return await self.find(call, made.id, repo)

    async def _allocate(
        self, call: Call, repo: Volumes, made: VolumeRecord, source: Source
    ) -> None:
        """The volume's data, durable; a failure leaves the volume in ``error`` (a
        delete clears it) rather than a record without data that says ``available``."""
        backend = state_of(call).backend
        try:
            if source.image_file is not None:
                await backend.write_image(
                    volume_id=made.id,
                    image_file=source.image_file,
                    disk_format=source.image_format,
                    size_gb=made.size,
                )
            elif source.backend_ref is not None:
                await backend.clone(source=source.backend_ref, volume_id=made.id, size_gb=made.size)
            else:
                await backend.create(volume_id=made.id, size_gb=made.size)
        except (OSError, ValueError) as exc:
            await repo.transition(made.id, expect={}, values={"status": "error"})
            raise invalid_volume(f"the volume's data could not be written: {exc}") from exc
        await repo.transition(
            made.id, expect={"status": ("creating",)}, values={"status": "available"}
        )

    async def changes(self, call: Call, repo: Volumes, record: VolumeRecord) -> dict[str, Any]:
        data = await call.body()
        known_only(data, UPDATE_KEYS, "volume")
        changes: dict[str, Any] = {}
        for wire, field in (("name", "name"), ("display_name", "name"),
                            ("description", "description"),
                            ("display_description", "description")):  # fmt: skip
            if wire in data:
                limit = 255 if field == "name" else 65535
                changes[field] = optional_text(data, wire, max_len=limit)
        if version(call) >= mv.Version(3, 53) and not set(data) & set(UPDATE_KEYS):
            raise BadRequest(
                f"Invalid input for field/attribute volume. Value: {data}. {data} does not "
                "have enough properties"
            )
        if "metadata" in data:
            await repo.set_metadata(record.id, metadata_items(data["metadata"]), replace=True)
            if not changes:
                changes["updated_at"] = repo.now()
        return changes


VOLUME = Volume()


def why_not_deletable(record: VolumeRecord, refusal: StateConflict) -> str:
    """Cinder's sentence lists every reason; this names the volume's own."""
    servers = sorted({a.instance_uuid or a.attached_host or "?" for a in record.attachments})
    if servers:
        return f"Volume {record.id} is {refusal.status}, attached to {', '.join(servers)}."
    if refusal.reason == "snapshots" or refusal.status in DELETABLE:
        return f"Volume {record.id} has snapshots."
    return f"Volume {record.id} is {refusal.status}."


async def remove_volume(
    call: Call, repo: Volumes, record: VolumeRecord, *, statuses: tuple[str, ...], cascade: bool
) -> None:
    """Delete the volume, its data and (``cascade``) its snapshots, if its state allows."""
    try:
        cascaded = await repo.remove(
            record.id,
            statuses=statuses,
            cascade=cascade,
            snapshot_statuses=("available", "error", "deleting"),
        )
    except StateConflict as exc:
        if exc.status is None:
            raise VOLUME.not_found(record.id, call) from exc
        raise invalid_volume(f"{NOT_DELETABLE} {why_not_deletable(record, exc)}") from exc
    backend = state_of(call).backend
    for snapshot_id in cascaded:
        await backend.delete_snapshot(snapshot_id=snapshot_id)
    await backend.delete(volume_id=record.id)


async def delete_volume(request: Request) -> Response:
    """Delete a volume (``cascade=true``: with its snapshots; ``force``: an admin's, in
    any status but attached)."""
    call = await routes.begin(VOLUME, request, "delete")
    repo = VOLUME.repository(call)
    record = await VOLUME.find(call, call.path("volume_id"), repo)
    VOLUME.access.check_write(call, record, "delete")
    cascade = boolean(call.query.get("cascade", "false"), "cascade")
    force = boolean(call.query.get("force", "false"), "force")
    if force and not call.principal.is_admin:
        raise call.refuse("force_delete", "only an admin may force a delete")
    statuses = (record.status,) if force else DELETABLE
    await remove_volume(call, repo, record, statuses=statuses, cascade=cascade)
    return Response(status_code=202)
