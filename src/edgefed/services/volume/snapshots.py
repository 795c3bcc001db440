"""Snapshots: create (of an ``available`` volume; of an ``in-use`` one with ``force``, or
without it from 3.66), list (summary and detail), show, update, delete."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from edgefed.api.resource import Call, ProjectOwned, Resource, routes
from edgefed.core.errors import BadRequest, NotFound
from edgefed.services.volume import microversion as mv
from edgefed.services.volume.cinder import (
    CINDER,
    boolean,
    invalid_field,
    known_only,
    metadata_items,
    optional_text,
    over_limit,
    version,
)
from edgefed.services.volume.listing import listed, page_of, paged, written
from edgefed.services.volume.quotas import volume_limits
from edgefed.services.volume.state import state_of
from edgefed.services.volume.views import snapshot_view
from edgefed.services.volume.volumes import VOLUME
from edgefed.store.volume import (
    Demand,
    NewSnapshot,
    OverLimit,
    SnapshotRecord,
    Snapshots,
    StateConflict,
)

CREATE_KEYS = ("name", "display_name", "description", "display_description", "volume_id",
               "force", "metadata")  # fmt: skip
FILTERS = {"name": "name", "status": "status", "volume_id": "volume_id"}
SORTABLE = ("id", "name", "status", "size", "created_at", "updated_at", "volume_id")
DELETABLE = ("available", "error", "error_deleting", "deleting")
EXTENDED = "os-extended-snapshot-attributes:"
# What the list without /detail shows of a snapshot.
SUMMARY = ("id", "created_at", "updated_at", "name", "description", "volume_id", "status",
           "size", "metadata")  # fmt: skip


class Snapshot(Resource[SnapshotRecord, Snapshots]):
    key = "snapshot"
    collection_key = "snapshots"
    path = "/v3/snapshots"
    dialect = CINDER
    store_class = Snapshots
    access = ProjectOwned[SnapshotRecord](project=lambda s: s.project_id)
    verbs = frozenset({"list", "show", "create", "update"})  # delete: delete_snapshot
    create_status = 202
    detail_list = "List snapshots with details."

    def view(self, record: SnapshotRecord, call: Call) -> dict[str, Any]:
        return snapshot_view(record, call)

    def shape(self, call: Call, view: dict[str, Any]) -> dict[str, Any]:
        """A create's or an update's answer has no extended attributes (Cinder's
        extension extends show and the lists only)."""
        return written(call, view, lambda name: name.startswith(EXTENDED))

    async def records(self, call: Call, repo: Snapshots) -> list[SnapshotRecord]:
        return await paged(call, repo.page, page_of(call, columns=FILTERS, sortable=SORTABLE))

    def collection(self, call: Call, views: list[dict[str, Any]]) -> dict[str, Any]:
        return listed(call, "snapshots", views, lambda v: {k: v[k] for k in SUMMARY})

    async def create(self, call: Call, repo: Snapshots) -> SnapshotRecord:
        data = await call.body()
        known_only(data, CREATE_KEYS, "snapshot")
        volume_id = data.get("volume_id")
        if not isinstance(volume_id, str) or not volume_id:
            raise invalid_field("volume_id", volume_id, "'volume_id' is a required property")
        volume = await VOLUME.find(call.of(VOLUME), volume_id)
        self.access.check_owner(call, volume.project_id, "create")
        force = boolean(data.get("force", False), "force")
        statuses = (
            ("available", "in-use")
            if force or version(call) >= mv.SNAPSHOT_IN_USE
            else ("available",)
        )
        metadata = metadata_items(data["metadata"]) if data.get("metadata") is not None else {}
        new = NewSnapshot(
            volume_id=volume.id,
            project_id=volume.project_id,
            user_id=call.principal.user_id,
            size=volume.size,
            volume_type_id=volume.volume_type_id,
            status="creating",  # ``available`` once its data is kept
            name=optional_text(data, "name") or optional_text(data, "display_name"),
            description=optional_text(data, "description", max_len=65535)
            or optional_text(data, "display_description", max_len=65535),
            metadata=metadata,
        )
        try:
            made = await repo.add(
                new=new,
                volume_statuses=statuses,
                demand=Demand(
                    kind="snapshots", gigabytes=volume.size, type_name=volume.volume_type_name
                ),
                limits=await volume_limits(call, volume.project_id),
            )
        except StateConflict as exc:
            if exc.status is None:
                raise NotFound(f"Volume {volume_id} could not be found.") from exc
            if exc.status == "in-use":
                raise BadRequest(
                    "Invalid volume: The snapshot cannot be created when the volume is in "
                    "in-use status."
                ) from exc
            raise BadRequest(
                f"Invalid volume: The snapshot cannot be created when the volume is in "
                f"{exc.status} status."
            ) from exc
        except OverLimit as exc:
            raise over_limit(exc, what="snapshots") from exc
        try:
            await state_of(call).backend.snapshot(volume_id=volume.id, snapshot_id=made.id)
        except OSError as exc:
            await repo.update(id=made.id, changes={"status": "error"})
            raise BadRequest(f"Invalid snapshot: its data could not be kept: {exc}") from exc
        await repo.update(id=made.id, changes={"status": "available"})
        return await self.find(call, made.id, repo)

    async def changes(self, call: Call, repo: Snapshots, record: SnapshotRecord) -> dict[str, Any]:
        data = await call.body()
        keys = ("name", "display_name", "description", "display_description")
        known_only(data, keys, "snapshot")
        if not data:
            raise BadRequest(
                "Invalid input for field/attribute snapshot. Value: {}. {} does not have "
                "enough properties"
            )
        changes: dict[str, Any] = {}
        for wire in keys:
            if wire in data:
                field = "name" if "name" in wire else "description"
                changes[field] = optional_text(
                    data, wire, max_len=255 if field == "name" else 65535
                )
        return changes


SNAPSHOT = Snapshot()


async def delete_snapshot(request: Request) -> Response:
    """Delete a snapshot (not one a volume is being made of)."""
    call = await routes.begin(SNAPSHOT, request, "delete")
    repo = SNAPSHOT.repository(call)
    record = await SNAPSHOT.find(call, call.path("snapshot_id"), repo)
    SNAPSHOT.access.check_write(call, record, "delete")
    try:
        await repo.remove(record.id, statuses=DELETABLE)
    except StateConflict as exc:
        if exc.status is None:
            raise SNAPSHOT.not_found(record.id, call) from exc
        raise BadRequest(
            "Invalid snapshot: Volume Snapshot status must be available or error."
        ) from exc
    await state_of(call).backend.delete_snapshot(snapshot_id=record.id)
    return Response(status_code=202)
