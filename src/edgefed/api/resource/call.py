"""One request as a resource's hooks see it: who calls, the site, the parent record, the
body (read once, in the service's words) and the service's sentences for refusals."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from starlette.datastructures import QueryParams
from starlette.requests import Request

from edgefed.api.auth import Principal
from edgefed.api.bodies import read_json, read_object
from edgefed.api.context import SiteContext
from edgefed.core.errors import Forbidden, NotFound

if TYPE_CHECKING:
    from edgefed.api.resource.declare import Resource

T = TypeVar("T")
_UNREAD: Any = object()


class Call:
    __slots__ = ("_body", "ctx", "parent", "principal", "request", "resource")

    def __init__(
        self,
        request: Request,
        principal: Principal,
        ctx: SiteContext,
        resource: Resource[Any, Any],
    ):
        self.request = request
        self.principal = principal
        self.ctx = ctx
        self.resource = resource
        # The record of the enclosing resource (an image, for its members), once found.
        self.parent: Any = None
        self._body: Any = _UNREAD

    @classmethod
    def on_behalf(
        cls, ctx: SiteContext, principal: Principal, resource: Resource[Any, Any], body: Any
    ) -> Call:
        """A create another room asks for through a port, as ``principal``, with ``body``
        (what the request's JSON would have held): no client request behind it, so the
        lowest microversion and no query."""
        request = Request({"type": "http", "method": "POST", "path": "/", "headers": []})
        call = cls(request, principal, ctx, resource)
        call._body = body
        return call

    def of(self, resource: Resource[Any, Any]) -> Call:
        """This call as ``resource``'s (a parent's policy, in the parent's words)."""
        other = Call(self.request, self.principal, self.ctx, resource)
        other._body = self._body
        return other

    @property
    def query(self) -> QueryParams:
        return self.request.query_params

    def path(self, name: str) -> str:
        """A path parameter (``tag`` of ``/images/{image_id}/tags/{tag}``)."""
        value: str = self.request.path_params[name]
        return value

    async def body(self) -> Any:
        """The request body, read once: the object under the resource's key (Neutron's
        ``{"network": {…}}``), the whole document (Glance), or the model FastAPI
        validated (a resource or action declared with one)."""
        if self._body is _UNREAD:
            dialect = self.resource.dialect
            if dialect.keyed_bodies:
                self._body = await read_object(self.request, dialect.body, key=self.resource.key)
            else:
                self._body = await read_json(self.request, dialect.body)
        return self._body

    def given_body(self, body: Any) -> None:
        """The body FastAPI parsed and validated (a pydantic model)."""
        self._body = body

    def model(self, cls: type[T]) -> T:
        """The validated body, as the model the route declared."""
        if not isinstance(self._body, cls):
            raise TypeError(f"this route's body is not a {cls.__name__}")
        return self._body

    # -- the service's sentences (the resource's: see ``Resource.refuse``) --------------

    def refuse(self, verb: str, why: str, *, id: str = "", rule: str = "") -> Forbidden:
        """The policy's 403 in the service's words (``rule:update_network is disallowed
        by policy (…)``)."""
        return self.resource.refuse(verb, why, id=id, rule=rule)

    def not_found(self, id: str) -> NotFound:
        return self.resource.not_found(id, self)
