"""The attachments API (3.27; ``os-complete`` 3.44, ``mode`` 3.54): how Nova attaches a
volume today. Create reserves the volume for a server (``reserved``; ``attaching``
when a connector is given), update gives the host's connector and answers the
connection, complete makes it ``in-use``, delete detaches (store/volume/attachments.py
holds the state machine)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from edgefed.api.bodies import read_object
from edgefed.api.resource import Call, ProjectOwned, Resource, routes
from edgefed.api.responses import Json
from edgefed.core.errors import BadRequest, Conflict, NotFound
from edgefed.services.volume import microversion as mv
from edgefed.services.volume.attach_actions import mode_of
from edgefed.services.volume.cinder import (
    CINDER,
    connector_field,
    invalid_field,
    invalid_input,
    invalid_volume,
    known_only,
    server_id,
    version,
)
from edgefed.services.volume.remote_attach import connect_for, drop
from edgefed.services.volume.state import state_of
from edgefed.services.volume.views import attachment_view
from edgefed.services.volume.volumes import VOLUME
from edgefed.store.volume import AttachmentRecord, Attachments, StateConflict, Volumes

FILTERS = {"volume_id": "volume_id", "status": "attach_status", "attach_status": "attach_status",
           "instance_id": "instance_uuid"}  # fmt: skip


def checked_connector(connector: dict[str, Any]) -> None:
    """The connector's strings an attachment keeps (host, mountpoint) are strings of at
    most 255 characters."""
    connector_field(connector, "host")
    connector_field(connector, "mountpoint")


class AttachmentAccess(ProjectOwned[AttachmentRecord]):
    def admit(self, call: Call, verb: str, id: str | None) -> None:
        mv.require(call.request, mv.ATTACHMENTS)


def not_found(id: str) -> NotFound:
    return NotFound(f"Volume attachment could not be found with filter: attachment_id = {id}.")


class Attachment(Resource[AttachmentRecord, Attachments]):
    key = "attachment"
    collection_key = "attachments"
    path = "/v3/attachments"
    dialect = CINDER
    store_class = Attachments
    access = AttachmentAccess(project=lambda a: a.project_id)
    verbs = frozenset({"list", "show", "create"})
    create_status = 200
    detail_list = "List attachments with details."

    def view(self, record: AttachmentRecord, call: Call) -> dict[str, Any]:
        return attachment_view(record, detail=True)

    def not_found(self, id: str, call: Call | None = None) -> NotFound:
        return not_found(id)

    async def records(self, call: Call, repo: Attachments) -> list[AttachmentRecord]:
        filters: dict[str, object] = {}
        for name, value in call.query.items():
            if name in FILTERS:
                filters[FILTERS[name]] = value
            elif name not in ("limit", "marker", "sort", "all_tenants", "offset"):
                raise invalid_input(f"Invalid filters {name} are found in query options.")
        if not (call.principal.is_admin and call.query.get("all_tenants")):
            filters["project_id"] = call.principal.project_id or ""
        return list(await repo.list(filters=filters))

    def collection(self, call: Call, views: list[dict[str, Any]]) -> dict[str, Any]:
        if not call.request.url.path.endswith("/detail"):
            keep = ("id", "status", "instance", "volume_id")
            views = [{k: v[k] for k in keep} for v in views]
        return {"attachments": views}

    async def create(self, call: Call, repo: Attachments) -> AttachmentRecord:
        data = await call.body()
        allowed = ["volume_uuid", "instance_uuid", "connector"]
        if version(call) >= mv.ATTACHMENT_MODE:
            allowed.append("mode")
        known_only(data, allowed, "attachment")
        volume_id = data.get("volume_uuid")
        if not isinstance(volume_id, str) or not volume_id:
            raise invalid_field("attachment", data, "'volume_uuid' is a required property")
        volume = await VOLUME.find(call.of(VOLUME), volume_id)
        self.access.check_owner(call, volume.project_id, "create")
        connector = data.get("connector")
        if connector is not None and not isinstance(connector, dict):
            raise invalid_field("connector", connector, f"{connector!r} is not of type 'object'")
        checked_connector(connector or {})
        mode = mode_of(volume, data.get("mode")) if data.get("mode") or volume.readonly else "null"
        info = state_of(call).backend.connection_info(volume_id=volume.id, mode=mode)
        try:
            made = await repo.reserve(
                volume_id=volume.id,
                project_id=volume.project_id,
                instance_uuid=server_id(data, "instance_uuid"),
                connector=connector or None,
                connection_info=info,
                attach_mode=mode,
            )
        except StateConflict as exc:
            if exc.status is None:  # deleted meanwhile
                raise NotFound(f"Volume {volume_id} could not be found.") from exc
            if exc.reason == "error":
                raise invalid_volume(
                    "Volume attachments can not be created if the volume is in an error "
                    f"state. The Volume {volume.id} currently has a status of: {exc.status} "
                ) from exc
            allowed_statuses = "available or in-use" if volume.multiattach else "available"
            raise invalid_volume(
                f"Volume {volume.id} status must be {allowed_statuses} to reserve, but the "
                f"current status is {exc.status}."
            ) from exc
        return await connect_for(call.ctx, repo, made)


ATTACHMENT = Attachment()


async def _writable(request: Request, verb: str) -> tuple[Call, Attachments, AttachmentRecord]:
    call = await routes.begin(ATTACHMENT, request, verb)
    repo = ATTACHMENT.repository(call)
    record = await ATTACHMENT.find(call, call.path("attachment_id"), repo)
    ATTACHMENT.access.check_write(call, record, verb)
    return call, repo, record


async def update_attachment(request: Request) -> Json:
    """Give an attachment the host's connector; the answer holds the connection."""
    call, repo, record = await _writable(request, "update")
    data = await read_object(request, CINDER.body, key="attachment")
    known_only(data, ("connector",), "attachment")
    connector = data.get("connector")
    if not isinstance(connector, dict) or not connector:
        raise invalid_field("attachment", data, "'connector' is a required property")
    checked_connector(connector)
    volume = await Volumes(call.ctx.store).get(id=record.volume_id)
    if volume is None:
        raise not_found(record.id)
    mode = (
        record.attach_mode
        if record.attach_mode != "null"
        else mode_of(volume, connector.get("mode"))
    )
    info = state_of(call).backend.connection_info(volume_id=volume.id, mode=mode)
    try:
        updated = await repo.connect(record.id, connector=connector, connection_info=info,
                                     attach_mode=mode)  # fmt: skip
    except StateConflict as exc:
        if exc.status is None:
            raise not_found(record.id) from exc
        raise Conflict(
            "Resource conflict: Volume attachments can not be updated if the volume is in an "
            f"error state. The Volume {volume.id} currently has a status of: {exc.status} "
        ) from exc
    return ATTACHMENT.render(call, await connect_for(call.ctx, repo, updated))


async def attachment_action(request: Request) -> Response:
    """``os-complete`` (3.44): the attachment is in use."""
    mv.require(request, mv.ATTACHMENT_COMPLETE)
    _, repo, record = await _writable(request, "complete")
    body = await read_object(request, CINDER.body)
    if set(body) != {"os-complete"}:
        raise BadRequest(f"There is no such action: {', '.join(sorted(body)) or None}")
    try:
        await repo.complete(record.id)
    except StateConflict as exc:
        raise not_found(record.id) from exc
    return Response(status_code=204)


async def delete_attachment(request: Request) -> Json:
    """Detach: the attachment goes; the volume's other attachments are answered."""
    call, repo, record = await _writable(request, "delete")
    try:
        await drop(call.ctx, repo, record)
    except StateConflict as exc:
        raise not_found(record.id) from exc
    left = await repo.list(filters={"volume_id": record.volume_id})
    return Json({"attachments": [attachment_view(a, detail=False) for a in left]})
