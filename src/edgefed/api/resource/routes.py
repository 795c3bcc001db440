"""The routes a resource declaration builds: the same steps in the same order for every
resource, and an OpenAPI operation that says what each takes.

A route is a plain ``async def endpoint(request)``: no FastAPI dependency to solve and
no parameter to validate on the hot path (lists and shows), so a declared resource
costs what a hand-written handler did. Path and query parameters and kit-read bodies
are documented through ``openapi_extra``. Only a route with a pydantic body lets
FastAPI read it, and then authentication runs as the route's dependency, before the
body is validated, so a caller without rights learns nothing of the schema.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from edgefed.api.auth import principal_of
from edgefed.api.context import site_context
from edgefed.api.resource.call import Call
from edgefed.api.resource.declare import Action, Resource
from edgefed.api.responses import Json
from edgefed.api.service import DeclaredRoute

Endpoint = Callable[..., Awaitable[Response]]
_CALL = "edgefed.call"
_PATH_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


async def begin(resource: Resource[Any, Any], request: Request, verb: str) -> Call:
    """Who calls, and whether the resource admits them for ``verb`` (before any lookup)."""
    call = Call(request, await principal_of(request), site_context(request), resource)
    resource.access.admit(call, verb, request.path_params.get(resource.id_param))
    request.scope[_CALL] = call
    return call


async def _parent(call: Call) -> None:
    parent = call.resource.parent
    if parent is not None:
        call.parent = await parent.find(call, call.path(parent.id_param))


def _respond(resource: Resource[Any, Any], call: Call, result: Any, status: int) -> Response:
    if result is None:
        return Response(status_code=status)
    if isinstance(result, Response):
        return result
    if isinstance(result, dict):
        return Json(result, status_code=status)
    return resource.render(call, result, status_code=status)


def _list(res: Resource[Any, Any]) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        call = await begin(res, request, "list")
        await _parent(call)
        repo = res.repository(call)
        records = await res.access.visible(call, await res.records(call, repo))
        view = res.view
        return Json(res.collection(call, [view(record, call) for record in records]))

    return endpoint


def _show(res: Resource[Any, Any]) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        call = await begin(res, request, "show")
        await _parent(call)
        return res.render(call, await res.find(call, call.path(res.id_param)))

    return endpoint


async def _started(res: Resource[Any, Any], request: Request, verb: str, body: Any) -> Call:
    """The call of a writing route: begun here, or by the route's dependency when
    FastAPI validated a body first; the body read now unless the resource reads late."""
    call: Call | None = request.scope.get(_CALL)
    if call is None or call.resource is not res:
        call = await begin(res, request, verb)
    if body is not None:
        call.given_body(body)
    res.check_request(call, verb)
    if res.read_body_first:
        await call.body()
    await _parent(call)
    return call


def _create(res: Resource[Any, Any]) -> Endpoint:
    async def endpoint(request: Request, body: Any = None) -> Response:
        call = await _started(res, request, "create", body)
        record = await res.create(call, res.repository(call))
        await res.after_write(call, "create", None, record)
        return res.render(call, record, status_code=res.create_status, headers=res.create_headers)

    return endpoint


def _update(res: Resource[Any, Any]) -> Endpoint:
    async def endpoint(request: Request, body: Any = None) -> Response:
        call = await _started(res, request, "update", body)
        repo = res.repository(call)
        record = await res.find(call, call.path(res.id_param), repo)
        res.access.check_write(call, record, "update")
        res.check_unlocked(call, record)
        changes = await res.changes(call, repo, record)
        updated = record
        if changes:
            updated = await repo.update(id=res.id_of(record), changes=changes)
            if updated is None:
                raise res.not_found(res.id_of(record), call)
        await res.after_write(call, "update", record, updated)
        return res.render(call, updated)

    return endpoint


def _delete(res: Resource[Any, Any]) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        call = await begin(res, request, "delete")
        await _parent(call)
        repo = res.repository(call)
        record = await res.find(call, call.path(res.id_param), repo)
        res.access.check_write(call, record, "delete")
        res.check_unlocked(call, record)
        await res.before_delete(call, repo, record)
        if not await repo.delete(id=res.id_of(record)):
            raise res.not_found(res.id_of(record), call)
        await res.after_write(call, "delete", record, None)
        return Response(status_code=204)

    return endpoint


def _action(res: Resource[Any, Any], action: Action) -> Endpoint:
    async def endpoint(request: Request, body: Any = None) -> Response:
        call: Call | None = request.scope.get(_CALL)
        if call is None or call.resource is not res:
            call = await begin(res, request, action.verb)
        if body is not None:
            call.given_body(body)
        await _parent(call)
        repo = res.repository(call)
        record = await res.find(call, call.path(res.id_param), repo)
        if action.writes:
            res.access.check_write(call, record, action.verb)
            res.check_unlocked(call, record)
        result = await action.handler(res, call, repo, record)
        return _respond(res, call, result, action.status_code)

    return endpoint


# -- building routes ----------------------------------------------------------------------


def _gate(res: Resource[Any, Any], verb: str) -> Callable[[Request], Awaitable[None]]:
    """The route's dependency when FastAPI validates its body: the caller is admitted
    before the body is validated."""

    async def admit(request: Request) -> None:
        await begin(res, request, verb)

    return admit


def _signature(endpoint: Endpoint, body: type[BaseModel] | None) -> Endpoint:
    """What FastAPI sees of the endpoint: the request, and a body only when it is to
    validate one."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    params = [inspect.Parameter("request", kind, annotation=Request)]
    if body is not None:
        params.append(inspect.Parameter("body", kind, annotation=body))
    endpoint.__signature__ = inspect.Signature(params, return_annotation=Response)  # type: ignore[attr-defined]
    return endpoint


def _openapi(
    res: Resource[Any, Any], path: str, *, query: dict[str, str], reads_body: bool
) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(path)
    ]
    parameters += [
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
        | ({"description": text} if text else {})
        for name, text in query.items()
    ]
    extra: dict[str, Any] = {"parameters": parameters} if parameters else {}
    if reads_body and res.body_schema is not None:
        schema: dict[str, Any] = dict(res.body_schema)
        if res.dialect.keyed_bodies:
            schema = {"type": "object", "required": [res.key], "properties": {res.key: schema}}
        extra["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schema}},
        }
    return extra


def _query(res: Resource[Any, Any], *, listing: bool) -> dict[str, str]:
    query: dict[str, str] = {}
    if listing:
        query.update({name: spec.description for name, spec in res.filters.items()})
        if res.paging:
            query["limit"] = "At most this many records."
            query["marker"] = "The id of the last record of the previous page."
    query.update(res.query_doc)
    return query


def build_routes(res: Resource[Any, Any]) -> list[BaseRoute]:
    """The resource's routes, declared: ``mount`` builds them (api/service.py)."""
    router = APIRouter(route_class=DeclaredRoute)
    item = f"{res.path}/{{{res.id_param}}}"
    title, plural = res.title.lower(), res.collection_key.replace("_", " ")

    def add(
        path: str,
        method: str,
        endpoint: Endpoint,
        *,
        name: str,
        summary: str | None,
        status_code: int,
        description: str | None = None,
        body: type[BaseModel] | None = None,
        gate: str | None = None,
        query: dict[str, str] | None = None,
        reads_body: bool = False,
    ) -> None:
        dependencies = [Depends(_gate(res, gate))] if body is not None and gate else []
        router.add_api_route(
            path,
            _signature(endpoint, body),
            methods=[method],
            name=name,
            summary=summary,
            description=description,
            status_code=status_code,
            dependencies=dependencies,
            openapi_extra=_openapi(res, path, query=query or {}, reads_body=reads_body),
        )

    verbs = res.verbs
    if "list" in verbs:
        add(res.path, "GET", _list(res), name=f"list_{res.collection_key}",
            summary=f"List {plural}", status_code=200, query=_query(res, listing=True))  # fmt: skip
    if "list" in verbs and res.detail_list:  # summary: FastAPI's, from the name
        add(f"{res.path}/detail", "GET", _list(res), name="list_detail", summary=None,
            description=res.detail_list, status_code=200,
            query=_query(res, listing=True))  # fmt: skip
    if "create" in verbs:
        add(res.path, "POST", _create(res), name=f"create_{res.key}",
            summary=f"Create a {title}", status_code=res.create_status,
            body=res.create_body, gate="create", reads_body=res.create_body is None)  # fmt: skip
    if "show" in verbs:
        add(item, "GET", _show(res), name=f"show_{res.key}", summary=f"Show a {title}",
            status_code=200, query=_query(res, listing=False))  # fmt: skip
    if "update" in verbs:
        add(item, res.update_method, _update(res), name=f"update_{res.key}",
            summary=f"Update a {title}", status_code=200, body=res.update_body,
            gate="update", reads_body=res.update_body is None)  # fmt: skip
    if "delete" in verbs:
        add(item, "DELETE", _delete(res), name=f"delete_{res.key}",
            summary=f"Delete a {title}", status_code=204)  # fmt: skip
    for action in res.actions:
        add(item + action.path, action.method, _action(res, action),
            name=f"{action.name}_{res.key}", summary=action.summary or action.name,
            status_code=action.status_code, body=action.body, gate=action.verb)  # fmt: skip
    return list(router.routes)
