"""What every Neutron resource shares: the dialect, list filters and ``fields``, the
attribute readers and the create policy.

Neutron lists accept any attribute as a filter (``?name=x&shared=false``) and
``fields=`` to choose the attributes shown; both are generic here, over the views.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, TypeVar

from starlette.datastructures import QueryParams

from edgefed.api.bodies import BodyWording
from edgefed.api.resource import Call, Dialect, Filter, Repository, Resource
from edgefed.core.errors import BadRequest

R = TypeVar("R")
P = TypeVar("P", bound=Repository[Any, Any])

NEUTRON = Dialect(
    body=BodyWording(
        empty="Resource body required: expected a JSON object under '{key}'.",
        malformed="Invalid input for operation: the body is not valid JSON.",
        not_object="Resource body required: expected a JSON object under '{key}'.",
    ),
    not_found="{title} {id} could not be found.",
    not_found_kind="{Kind}NotFound",
    forbidden="rule:{rule} is disallowed by policy ({why}).",
    forbidden_kind="PolicyNotAuthorized",
    locked="{title} {id} is managed by sync source {origin}; change it there.",
    update_method="PUT",
)
BOOLEAN_WORDS = {"true": True, "1": True, "false": False, "0": False}
IGNORED_PARAMS = frozenset({"fields", "limit", "marker", "sort_key", "sort_dir", "page_reverse"})
FIELDS_DOC = {"fields": "Attributes to show (repeat the parameter for several)."}


def stamp(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


class Owned(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def project_id(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def created_at(self) -> dt.datetime: ...
    @property
    def updated_at(self) -> dt.datetime: ...


def standard(record: Owned) -> dict[str, Any]:
    """Neutron's standard attributes, the same on every resource's view."""
    return {
        "id": record.id,
        "name": record.name,
        "tenant_id": record.project_id,
        "project_id": record.project_id,
        "description": record.description,
        "tags": [],
        "created_at": stamp(record.created_at),
        "updated_at": stamp(record.updated_at),
        "revision_number": 0,
    }


def _matches(view: dict[str, Any], name: str, values: list[str]) -> bool:
    if name not in view:
        return True
    actual = view[name]
    if isinstance(actual, bool):  # Neutron's convert_to_boolean: true/false, 1/0, any case
        return any(BOOLEAN_WORDS.get(v.lower()) is actual for v in values)
    if isinstance(actual, list):
        return any(str(v) in [str(a) for a in actual] for v in values)
    return str(actual) in values


def select(params: QueryParams, views: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Apply attribute filters and ``fields`` from the query string."""
    filters = {k: params.getlist(k) for k in params if k not in IGNORED_PARAMS}
    chosen = [v for v in views if all(_matches(v, k, vals) for k, vals in filters.items())]
    fields = params.getlist("fields")
    if fields:
        chosen = [{k: v[k] for k in fields if k in v} for v in chosen]
    return chosen


def pick(params: QueryParams, view: dict[str, Any]) -> dict[str, Any]:
    fields = params.getlist("fields")
    return {k: view[k] for k in fields if k in view} if fields else view


STRING: dict[str, Any] = {"type": "string", "maxLength": 255}


def neutron_body(properties: dict[str, Any], *, required: Sequence[str] = ()) -> dict[str, Any]:
    """A Neutron body's JSON schema, for OpenAPI: the attributes every resource takes
    (name, description), and ``properties``."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {"name": STRING, "description": STRING, **properties},
    }
    if required:
        schema["required"] = list(required)
    return schema


def listed(*names: str) -> dict[str, Filter]:
    """Filters a list pushes to the store (exact values, several allowed), beyond the
    attribute filters ``select`` applies to every view."""
    return {
        name: Filter(field=name, parse=tuple, description=f"Only this {name}.") for name in names
    }


class NeutronResource(Resource[R, P]):
    dialect = NEUTRON
    query_doc = FIELDS_DOC

    def shape(self, call: Call, view: dict[str, Any]) -> dict[str, Any]:
        return pick(call.query, view)

    def collection(self, call: Call, views: list[dict[str, Any]]) -> dict[str, Any]:
        return {self.collection_key: select(call.query, views)}


# -- request attributes ----------------------------------------------------------------


def bad_input(message: str) -> BadRequest:
    return BadRequest(f"Invalid input for operation: {message}", kind="InvalidInput")


def flag(data: dict[str, Any], key: str, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise bad_input(f"'{value}' cannot be converted to boolean (field '{key}')")
    return value


def text(data: dict[str, Any], key: str, default: str = "", max_len: int = 255) -> str:
    """A string attribute; NUL is refused (no database stores it in text)."""
    value = data.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str) or len(value) > max_len or "\x00" in value:
        raise bad_input(
            f"'{value}' is not a valid string of at most {max_len} characters (field '{key}')"
        )
    return value


def texts(data: dict[str, Any], keys: Sequence[str]) -> dict[str, str]:
    """The string attributes of ``keys`` that ``data`` names (an update's)."""
    return {key: text(data, key) for key in keys if key in data}


def owner_for(call: Call, data: dict[str, Any]) -> str:
    """The project a new resource belongs to; the caller must be a member of it (or admin).

    Neutron's secure-RBAC defaults: creating needs the ``member`` role on the project
    (``reader`` only reads); creating for another project needs ``admin``.
    """
    principal = call.principal
    asked = data.get("project_id") or data.get("tenant_id")
    if asked and asked != principal.project_id:
        if not principal.is_admin:
            raise call.refuse("create", "only an admin can create a resource for another project")
        return str(asked)
    if principal.project_id is None and not asked:
        raise BadRequest("A project-scoped token (or project_id) is needed.")
    if not (principal.is_admin or principal.has_role("member")):
        raise call.refuse("create", "the member role on the project is required")
    return str(asked or principal.project_id)


def require_admin_flags(
    call: Call, data: dict[str, Any], flags: Sequence[str], *, verb: str
) -> None:
    """Admin-only attributes (``shared``, ``router:external``), checked as Neutron's policy
    engine does: on create when set to anything but their default (false), on update
    whenever the body names them."""
    if call.principal.is_admin:
        return
    for name in flags:
        if name in data and (verb == "update" or data[name] is not False):
            rule = f"{verb}_{call.resource.key}:{name}"
            raise call.refuse(verb, f"only an admin may set '{name}'", rule=rule)


def bad_request(message: str) -> BadRequest:
    """Neutron's API-layer refusal of a body (``HTTPBadRequest``), before any plugin
    check: a required attribute missing, an unknown one, a value not among those
    allowed."""
    return BadRequest(message, kind="HTTPBadRequest")


def invalid_attribute(name: str, reason: str) -> BadRequest:
    return bad_request(f"Invalid input for {name}. Reason: {reason}.")


def fixed_on_update(
    data: dict[str, Any], *, read_only: Sequence[str], unsupported: Sequence[str] = ()
) -> None:
    """Refuse an update that names what it cannot change, rather than answer 200 and
    change nothing: Neutron's read-only attributes in its words, and those Neutron
    changes but this cloud does not."""
    for name in read_only:
        if name in data:
            raise bad_request(f"Cannot update read-only attribute {name}")
    for name in unsupported:
        if name in data:
            raise bad_input(f"updating '{name}' is not supported by this cloud")


def required(data: dict[str, Any], name: str) -> Any:
    if data.get(name) is None:
        raise bad_request(f"Failed to parse request. Required attribute '{name}' not specified")
    return data[name]


def known_only(data: dict[str, Any], allowed: Iterable[str]) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise bad_request(f"Unrecognized attribute(s) '{', '.join(unknown)}'")


def one_of(data: dict[str, Any], name: str, values: Sequence[str], default: str) -> str:
    """An attribute that takes one of ``values``."""
    value = data.get(name)
    if value is None:
        return default
    if value not in values:
        raise invalid_attribute(name, f"'{value}' is not in {list(values)}")
    return str(value)
