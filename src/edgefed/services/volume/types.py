"""Volume types and their extra specs; ``__DEFAULT__`` is every site's, made on first use.

Everyone lists and shows the public types; only an admin sees private ones, creates,
changes or deletes a type, or reads extra specs beyond the few Cinder shows every user
(``multiattach``, ``RESKEY:availability_zones``, ``replication_enabled``). A type that
volumes or snapshots still have is not deleted (400), nor is the default one.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from edgefed.api.bodies import read_object
from edgefed.api.policy import require_admin
from edgefed.api.resource import Access, Call, Resource, routes
from edgefed.api.responses import Json
from edgefed.api.service import DeclaredRoute
from edgefed.core.errors import BadRequest, Conflict, Locked, NotFound
from edgefed.services.volume.cinder import (
    CINDER,
    boolean,
    invalid_field,
    known_only,
    metadata_items,
    optional_text,
)
from edgefed.store.volume import (
    DEFAULT_TYPE_NAME,
    NewVolumeType,
    TypeInUse,
    VolumeTypeRecord,
    VolumeTypes,
)

USER_VISIBLE_SPECS = ("multiattach", "RESKEY:availability_zones", "replication_enabled")
IS_PUBLIC = "os-volume-type-access:is_public"


def _conflict(exc: Exception, values: Any) -> Exception:
    return Conflict(f"Volume Type {values.get('name')} already exists.")


def types_of(call: Call) -> VolumeTypes:
    return VolumeTypes(call.ctx.store, conflict=_conflict)


class TypeAccess(Access[VolumeTypeRecord]):
    def admit(self, call: Call, verb: str, id: str | None) -> None:
        if verb not in ("list", "show"):
            require_admin(call.principal, "volume_extension:types_manage")

    def may_read(self, call: Call, record: VolumeTypeRecord) -> bool:
        return record.is_public or call.principal.is_admin


class VolumeType(Resource[VolumeTypeRecord, VolumeTypes]):
    key = "volume_type"
    collection_key = "volume_types"
    path = "/v3/types"
    id_param = "type_id"
    dialect = CINDER
    title = "Volume type"
    access = TypeAccess()
    verbs = frozenset({"list", "show", "create", "update"})  # delete: delete_type
    create_status = 200

    def repository(self, call: Call) -> VolumeTypes:
        return types_of(call)

    def view(self, record: VolumeTypeRecord, call: Call) -> dict[str, Any]:
        specs = dict(record.extra_specs)
        if not call.principal.is_admin:
            specs = {k: v for k, v in specs.items() if k in USER_VISIBLE_SPECS}
        view: dict[str, Any] = {
            "id": record.id,
            "name": record.name,
            "description": record.description,
            "is_public": record.is_public,
            IS_PUBLIC: record.is_public,
            "extra_specs": specs,
        }
        if call.principal.is_admin:  # Cinder's QoS policy: admins only
            view["qos_specs_id"] = None
        return view

    def shape(self, call: Call, view: dict[str, Any]) -> dict[str, Any]:
        """Cinder answers a create and an update with its older view (no QoS id), and
        its type access extension adds ``is_public`` to the create only."""
        method = call.request.method
        if method == "POST":
            return {k: v for k, v in view.items() if k != "qos_specs_id"}
        if method == "PUT":
            return {k: v for k, v in view.items() if k not in ("qos_specs_id", IS_PUBLIC)}
        return view

    async def records(self, call: Call, repo: VolumeTypes) -> list[VolumeTypeRecord]:
        await repo.ensure_default()
        found = list(await repo.list())
        wanted = call.query.get("is_public")
        if wanted is not None and call.principal.is_admin and wanted.lower() != "none":
            public = boolean(wanted, "is_public")
            found = [t for t in found if t.is_public == public]
        return found

    async def find(self, call: Call, id: str, repo: VolumeTypes | None = None) -> VolumeTypeRecord:
        repo = repo or self.repository(call)
        found = await repo.ensure_default() if id == "default" else await repo.get(id=id)
        if found is None or not await self.access.readable(call, found):
            raise NotFound(f"Volume type {id} could not be found.")
        return found

    async def create(self, call: Call, repo: VolumeTypes) -> VolumeTypeRecord:
        data = await call.body()
        known_only(data, ("name", "description", IS_PUBLIC, "extra_specs"), "volume_type")
        name = optional_text(data, "name")
        if not name or not name.strip():
            raise invalid_field("name", data.get("name"), "The type's name must not be empty.")
        public = boolean(data.get(IS_PUBLIC, True), IS_PUBLIC)
        specs = metadata_items(data.get("extra_specs") or {}, "extra_specs")
        await repo.ensure_default()
        return await repo.create(
            new=NewVolumeType(
                name=name.strip(),
                description=optional_text(data, "description", max_len=255),
                is_public=public,
                extra_specs=specs,
            )
        )

    async def changes(
        self, call: Call, repo: VolumeTypes, record: VolumeTypeRecord
    ) -> dict[str, Any]:
        require_own(record)
        data = await call.body()
        known_only(data, ("name", "description", "is_public"), "volume_type")
        if not data:
            raise BadRequest(
                "Specify volume type name, description, is_public or a combination thereof."
            )
        changes: dict[str, Any] = {}
        if data.get("name") is not None:
            name = optional_text(data, "name") or ""
            if not name.strip():
                raise invalid_field("name", name, "The type's name must not be empty.")
            if record.name == DEFAULT_TYPE_NAME and name.strip() != record.name:
                raise BadRequest("The default volume type cannot be renamed.")
            changes["name"] = name.strip()
        if "description" in data:
            changes["description"] = optional_text(data, "description", max_len=255)
        if "is_public" in data:
            changes["is_public"] = boolean(data["is_public"], "is_public")
        return changes

    async def before_delete(self, call: Call, repo: VolumeTypes, record: VolumeTypeRecord) -> None:
        require_own(record)
        if record.name == DEFAULT_TYPE_NAME:
            raise BadRequest("Default volume type can not be deleted.")

    async def delete_checked(self, call: Call, repo: VolumeTypes, record: VolumeTypeRecord) -> None:
        try:
            await repo.delete(id=record.id)
        except TypeInUse as exc:
            raise BadRequest("Target volume type is still in use.") from exc


VOLUME_TYPE = VolumeType()


def require_own(record: VolumeTypeRecord) -> None:
    """A type a sync source delivered is changed there only (409 naming the source)."""
    if record.origin:
        raise Locked(
            f"Volume type {record.name} was synchronised from site {record.origin} and can "
            "only be changed there.",
            source=record.origin,
        )


router = APIRouter(route_class=DeclaredRoute)


@router.delete("/v3/types/{type_id}", status_code=202)
async def delete_type(request: Request, type_id: str) -> Response:
    """Delete a volume type (not the default one, nor one that volumes have)."""
    call = await routes.begin(VOLUME_TYPE, request, "delete")
    repo = VOLUME_TYPE.repository(call)
    record = await VOLUME_TYPE.find(call, type_id, repo)
    await VOLUME_TYPE.before_delete(call, repo, record)
    await VOLUME_TYPE.delete_checked(call, repo, record)
    return Response(status_code=202)


# -- extra specs -------------------------------------------------------------------------


async def _admin_type(request: Request, type_id: str, verb: str) -> tuple[Call, VolumeTypeRecord]:
    call = await routes.begin(VOLUME_TYPE, request, verb)
    record = await VOLUME_TYPE.find(call, type_id)
    if verb != "show":
        require_own(record)
    return call, record


def _no_key(type_id: str, key: str) -> NotFound:
    return NotFound(f"Volume Type {type_id} has no extra specs with key {key}.")


@router.get("/v3/types/{type_id}/extra_specs")
async def list_extra_specs(request: Request, type_id: str) -> Json:
    call, record = await _admin_type(request, type_id, "show")
    return Json({"extra_specs": VOLUME_TYPE.view(record, call)["extra_specs"]})


@router.post("/v3/types/{type_id}/extra_specs")
async def set_extra_specs(request: Request, type_id: str) -> Json:
    call, record = await _admin_type(request, type_id, "update")
    data = await read_object(request, CINDER.body, key="extra_specs")
    specs = metadata_items(data, "extra_specs")
    await types_of(call).set_specs(record.id, specs)
    return Json({"extra_specs": specs})


@router.get("/v3/types/{type_id}/extra_specs/{key}")
async def show_extra_spec(request: Request, type_id: str, key: str) -> Json:
    call, record = await _admin_type(request, type_id, "show")
    specs = VOLUME_TYPE.view(record, call)["extra_specs"]
    if key not in specs:
        raise _no_key(type_id, key)
    return Json({key: specs[key]})


@router.put("/v3/types/{type_id}/extra_specs/{key}")
async def update_extra_spec(request: Request, type_id: str, key: str) -> Json:
    call, record = await _admin_type(request, type_id, "update")
    data = await read_object(request, CINDER.body)
    if len(data) != 1 or key not in data:
        raise BadRequest("Request body and URI mismatch")
    specs = metadata_items(data, "extra_specs")
    await types_of(call).set_specs(record.id, specs)
    return Json(specs)


@router.delete("/v3/types/{type_id}/extra_specs/{key}", status_code=202)
async def delete_extra_spec(request: Request, type_id: str, key: str) -> Response:
    call, record = await _admin_type(request, type_id, "update")
    if key not in record.extra_specs:
        raise _no_key(type_id, key)
    await types_of(call).set_specs(record.id, {}, removed=key)
    return Response(status_code=202)


async def type_for(call: Call, ref: Any, *, default: str | None) -> VolumeTypeRecord:
    """The type a new volume gets: the one named (by id or name), its source's, or the
    default type."""
    repo = types_of(call)
    if ref is None or ref == "":
        found = await repo.get(id=default) if default else None
        return found or await repo.ensure_default()
    if not isinstance(ref, str):
        raise invalid_field("volume_type", ref, f"{ref!r} is not of type 'string'")
    await repo.ensure_default()
    by_id = await repo.get(id=ref)
    found = by_id or await repo.by_name(ref)
    if found is None or not (found.is_public or call.principal.is_admin):
        if by_id is not None or _uuid_like(ref):
            raise NotFound(f"Volume type {ref} could not be found.")
        raise NotFound(f"Volume type with name {ref} could not be found.")
    return found


def _uuid_like(text: str) -> bool:
    return len(text.replace("-", "")) == 32 and all(c in "0123456789abcdef-" for c in text.lower())
