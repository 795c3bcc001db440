"""Nova's lists: a page of records after ``marker`` with its ``next`` link, and the two
routes of a list that answers in brief and in detail (``/flavors``, ``/flavors/detail``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from fastapi import APIRouter, Depends
from starlette.requests import Request

from edgefed.api.auth import Principal, current_principal
from edgefed.api.paging import parse_limit
from edgefed.api.responses import Json
from edgefed.core.errors import BadRequest
from edgefed.services.compute.links import next_link
from edgefed.services.compute.state import ComputeState, compute_state


class Identified(Protocol):
    @property
    def id(self) -> str: ...


T = TypeVar("T", bound=Identified)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    limit: int
    more: bool

    def answer(self, request: Request, collection: str, views: list[dict[str, Any]]) -> Json:
        """``{collection: views}``, with ``{collection}_links`` when more follow."""
        body: dict[str, Any] = {collection: views}
        if self.more and self.items:
            last = self.items[-1].id
            body[f"{collection}_links"] = [next_link(request, collection, last, self.limit)]
        return Json(body)


def page_of(request: Request, items: list[T]) -> Page[T]:
    """The records after the ``marker`` (by id; 400 when it is none of them), at most
    ``limit`` of them."""
    params = request.query_params
    marker = params.get("marker")
    if marker:
        ids = [item.id for item in items]
        if marker not in ids:
            raise BadRequest(f"marker [{marker}] not found")
        items = items[ids.index(marker) + 1 :]
    limit = parse_limit(params.get("limit"))
    return Page(items[:limit], limit, len(items) > limit)


class Lister(Protocol):
    async def __call__(
        self, request: Request, principal: Principal, state: ComputeState, *, detail: bool
    ) -> Json: ...


def add_list_routes(router: APIRouter, path: str, name: str, lister: Lister) -> None:
    """``GET {path}`` named ``name`` and ``GET {path}/detail`` named ``{name}_detail``,
    in that order (before any ``{path}/{id}``), answered by ``lister``."""
    for detail, suffix in ((False, ""), (True, "/detail")):
        router.add_api_route(
            path + suffix,
            _list_endpoint(lister, detail=detail),
            methods=["GET"],
            name=f"{name}_detail" if detail else name,
        )


def _list_endpoint(lister: Lister, *, detail: bool) -> Callable[..., Awaitable[Json]]:
    async def endpoint(
        request: Request,
        principal: Principal = Depends(current_principal),
        state: ComputeState = Depends(compute_state),
    ) -> Json:
        return await lister(request, principal, state, detail=detail)

    return endpoint
