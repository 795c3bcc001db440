"""A wire resource declared as data (after openstacksdk's ``resource.Resource``, server-side).

A subclass names the resource once — its keys, path, repository, view, policy, verbs
and dialect — and overrides the hooks its verbs need; ``routes()`` builds the list,
show, create, update and delete routes from that (``api/resource/routes.py``). Custom
actions are methods marked with ``@action``: the kit finds the record (404), checks
the policy and the sync lock for an action that writes, and renders what it returns.

    class Network(Resource[NetworkRecord, Networks]):
        key, collection_key, path = "network", "networks", "/v2.0/networks"
        dialect = NEUTRON
        access = ProjectOwned(project=lambda n: n.project_id, shared=lambda n: n.shared)

        def repository(self, call: Call) -> Networks:
            return Networks(call.ctx.store)

        def view(self, record: NetworkRecord, call: Call) -> dict[str, Any]: ...
        async def create(self, call: Call, repo: Networks) -> NetworkRecord: ...
        async def changes(self, call, repo, record) -> dict[str, Any]: ...

The order of the checks is the same for every resource (docs/resources.md): admit,
body (unless ``read_body_first`` is False), parent, find (404), policy (403), sync
lock (409), the hook, the write, ``after_write``.
"""

from __future__ import annotations

import operator
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel
from starlette.routing import BaseRoute

from edgefed.api.paging import parse_limit
from edgefed.api.resource.access import Access
from edgefed.api.resource.call import Call
from edgefed.api.resource.dialect import Dialect, forbidden, kind_of, locked, not_found
from edgefed.api.resource.repository import Repository
from edgefed.api.responses import Json
from edgefed.core.errors import BadRequest, Forbidden, Locked, NotFound

R = TypeVar("R")
P = TypeVar("P", bound=Repository[Any, Any])
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

CRUD = frozenset({"list", "show", "create", "update", "delete"})
READ_ONLY = frozenset({"list", "show"})


def last_value(values: list[str]) -> str:
    """A query parameter given more than once counts with its last value (Starlette's
    and FastAPI's reading)."""
    return values[-1]


@dataclass(frozen=True, slots=True)
class Filter:
    """A query parameter of the list: documented, and pushed to the repository as
    ``field`` = ``parse(values)`` (its values, in order) when ``field`` is set."""

    field: str | None = None
    parse: Callable[[list[str]], object] = last_value
    description: str = ""


@dataclass(frozen=True, slots=True)
class Action:
    """A custom route on one record: ``{item path}{path}``."""

    method: str
    path: str
    name: str
    handler: Callable[..., Awaitable[Any]]
    # The word the policy and its refusal use ("upload data to"); default: ``name``.
    verb: str = ""
    writes: bool = False
    status_code: int = 200
    body: type[BaseModel] | None = None
    summary: str = ""


def action(
    method: str,
    path: str,
    *,
    writes: bool = False,
    status_code: int = 200,
    body: type[BaseModel] | None = None,
    name: str | None = None,
    verb: str | None = None,
) -> Callable[[F], F]:
    """Mark a method ``(self, call, repo, record) -> result`` as a route on one record.

    ``writes``: the policy's ``check_write`` (with ``verb``, by default the action's
    ``name``) and the sync lock apply. ``body``: a pydantic model FastAPI validates and documents
    (``call.model(Model)``); without it the action reads ``await call.body()`` itself.
    The result: None (an empty answer, ``status_code``, 204 by default), a record
    (rendered by the view), a dict (JSON) or a Response.
    """

    def mark(fn: F) -> F:
        fn.__edgefed_action__ = Action(  # type: ignore[attr-defined]
            method=method,
            path=path,
            name=name or fn.__name__,
            verb=verb or name or fn.__name__,
            handler=fn,
            writes=writes,
            status_code=status_code,
            body=body,
            summary=" ".join((fn.__doc__ or "").strip().split("\n\n")[0].split()),
        )
        return fn

    return mark


class Resource(Generic[R, P]):
    """Subclass and declare; see the module docstring and docs/resources.md."""

    # -- the declaration ---------------------------------------------------------------
    # The repository, built per call on the site's store (or override ``repository``).
    store_class: Callable[..., P] | None = None
    # Record attributes shown as they are, in order (openstacksdk's ``resource.Body``):
    # "name", or ("router:external", "external") for a wire name of its own. ``view``
    # starts from them (``copy``) and adds what is computed.
    attributes: tuple[str | tuple[str, str], ...] = ()
    key: str
    collection_key: str
    # Below the service's prefix, with the parent's id parameter for a nested resource:
    # "/v2.0/networks", "" (the inventory's hosts), "/v2/images/{image_id}/members".
    path: str
    dialect: Dialect
    access: Access[Any] = Access()
    verbs: frozenset[str] = CRUD
    # The path parameter naming one record (default: "<key>_id").
    id_param: str = ""
    # The resource in a sentence ("Network", "Security group"; default: from the key).
    title: str = ""
    # This resource's 404 sentence, when it is not the dialect's (``{parent}``: the id
    # of the enclosing record).
    not_found_message: str = ""
    parent: Resource[Any, Any] | None = None
    filters: Mapping[str, Filter] = {}
    # limit/marker paging pushed to the repository.
    paging: bool = False
    # Request bodies FastAPI validates and documents (otherwise ``call.body()`` reads
    # them in the dialect's words and ``body_schema`` documents them).
    create_body: type[BaseModel] | None = None
    update_body: type[BaseModel] | None = None
    body_schema: Mapping[str, Any] | None = None
    # Read the body before looking anything up (a malformed body is a 400 even for a
    # record that does not exist), as most services do; Glance looks up first.
    read_body_first: bool = True
    # The update's HTTP method (default: the dialect's).
    update_method: str = ""
    create_status: int = 201
    create_headers: Mapping[str, str] = {}
    # What a query parameter means (OpenAPI), beyond ``filters``.
    query_doc: Mapping[str, str] = {}
    # A ``{path}/detail`` list too (Cinder's), described so (OpenAPI): the same list,
    # which ``collection`` tells apart by the path; before ``/{id}``, which would take it.
    detail_list: str = ""

    actions: ClassVar[tuple[Action, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        found = {
            a.name: a for base in reversed(cls.__mro__[1:]) for a in getattr(base, "actions", ())
        }
        for value in cls.__dict__.values():
            marked = getattr(value, "__edgefed_action__", None)
            if isinstance(marked, Action):
                found[marked.name] = marked
        cls.actions = tuple(found.values())

    def __init__(self) -> None:
        self.title = self.title or self.key.replace("_", " ").capitalize()
        self.kind = kind_of(self.title)
        self.id_param = self.id_param or f"{self.key}_id"
        self.update_method = self.update_method or self.dialect.update_method
        pairs = [(a, a) if isinstance(a, str) else a for a in self.attributes]
        self._wire = tuple(wire for wire, _ in pairs)
        # One C call reads every attribute (a tuple; a lone value for one attribute).
        self._read = operator.attrgetter(*(attr for _, attr in pairs)) if pairs else None

    # -- hooks (override what the verbs need) -----------------------------------------

    def repository(self, call: Call) -> P:
        if self.store_class is None:
            raise NotImplementedError(f"{type(self).__name__}: no store_class or repository()")
        return self.store_class(call.ctx.store)

    def copy(self, record: R) -> dict[str, Any]:
        """The declared ``attributes`` of ``record``, by their wire names."""
        if self._read is None:
            return {}
        values = self._read(record)
        return dict(zip(self._wire, values if len(self._wire) > 1 else (values,), strict=True))

    def view(self, record: R, call: Call) -> dict[str, Any]:
        """The record on the wire; by default its declared ``attributes``."""
        return self.copy(record)

    def id_of(self, record: R) -> str:
        return str(record.id)  # type: ignore[attr-defined]

    def origin(self, call: Call, record: R) -> str | None:
        """The sync source that owns ``record``: writes are refused here (409)."""
        return None

    async def records(self, call: Call, repo: P) -> Sequence[R]:
        """The list's records before the policy: ``filters`` and paging pushed down."""
        filters: dict[str, object] = {}
        params = call.query
        for name, spec in self.filters.items():
            if spec.field is not None and name in params:
                filters[spec.field] = spec.parse(params.getlist(name))
        limit = after = None
        if self.paging:
            limit = parse_limit(params.get("limit"))
            after = params.get("marker") or None
        try:
            return await repo.list(filters=filters, limit=limit, after=after)
        except LookupError as exc:
            raise BadRequest(f"marker {after} not found") from exc

    async def create(self, call: Call, repo: P) -> R:
        """Validate ``await call.body()`` and store the new record through ``repo``."""
        raise NotImplementedError

    async def changes(self, call: Call, repo: P, record: R) -> Mapping[str, Any]:
        """The fields an update sets (none: the record is answered unchanged)."""
        raise NotImplementedError

    async def before_delete(self, call: Call, repo: P, record: R) -> None:
        """Refuse a delete the policy allows but the record's state does not."""

    async def after_write(self, call: Call, verb: str, before: R | None, after: R | None) -> None:
        """After a create, update or delete (tokens to revoke, caches to drop)."""

    def check_request(self, call: Call, verb: str) -> None:
        """Checks of the request itself, before anything (Glance's patch media type)."""

    # -- envelopes ----------------------------------------------------------------------

    def shape(self, call: Call, view: dict[str, Any]) -> dict[str, Any]:
        """One view as answered (Neutron's ``fields=`` picks attributes here)."""
        return view

    def envelope(self, call: Call, view: dict[str, Any]) -> dict[str, Any]:
        return {self.key: view} if self.dialect.keyed_views else view

    def collection(self, call: Call, views: list[dict[str, Any]]) -> dict[str, Any]:
        """The list's document (Keystone adds ``links``, Glance ``schema``)."""
        return {self.collection_key: views}

    # -- what routes and custom handlers use ----------------------------------------------

    def words(self, call: Call | None = None, **values: str) -> dict[str, str]:
        parent = call.parent if call is not None else None
        return {
            "title": self.title,
            "Kind": self.kind,
            "key": self.key,
            "collection": self.collection_key,
            "parent": self.parent.id_of(parent) if self.parent and parent is not None else "",
            **values,
        }

    def not_found(self, id: str, call: Call | None = None) -> NotFound:
        return not_found(self.dialect, self.words(call, id=id), self.not_found_message)

    def refuse(self, verb: str, why: str, *, id: str = "", rule: str = "") -> Forbidden:
        """The policy's 403; ``{rule}`` is ``<verb>_<key>`` unless given."""
        rule = rule or f"{verb}_{self.key}"
        return forbidden(self.dialect, self.words(verb=verb, why=why, id=id, rule=rule))

    def locked(self, id: str, origin: str) -> Locked:
        return locked(self.dialect, self.words(id=id, origin=origin))

    async def find(self, call: Call, id: str, repo: P | None = None) -> R:
        """The record the caller may see, or this resource's 404."""
        found: R | None = await (repo or self.repository(call)).get(id=id)
        if found is None or not await self.access.readable(call, found):
            raise self.not_found(id, call)
        return found

    def check_unlocked(self, call: Call, record: R) -> None:
        origin = self.origin(call, record)
        if origin:
            raise self.locked(self.id_of(record), origin)

    def render(
        self,
        call: Call,
        record: R,
        *,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> Json:
        body = self.envelope(call, self.shape(call, self.view(record, call)))
        return Json(body, status_code=status_code, headers=dict(headers) if headers else None)

    def routes(self) -> list[BaseRoute]:
        from edgefed.api.resource.routes import build_routes

        return build_routes(self)
