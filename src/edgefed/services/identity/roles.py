"""/v3/roles and implied roles (/v3/roles/{prior}/implies/{implied}, /v3/role_inferences).

Roles are global (ID = uuid5 of the name, same on every site) and readable by anyone
authenticated. The default chain is admin → member → reader; Keystone forbids implying
``admin`` and cycles. Deleting a role revokes the tokens of whoever held it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request

from edgefed.api.resource import Call, Filter, action
from edgefed.api.resource.routes import begin
from edgefed.api.responses import Json
from edgefed.api.service import DeclaredRoute
from edgefed.core.errors import BadRequest, Forbidden, NotFound, ValidationFailed
from edgefed.core.ids import predictable_id
from edgefed.services.identity.grants import RoleGraph, role_graph
from edgefed.services.identity.keystone import KeystonePolicy, KeystoneResource, exact
from edgefed.services.identity.revoking import revoke_later, revoke_pending
from edgefed.services.identity.schemas import RoleCreateBody, RoleUpdateBody
from edgefed.services.identity.state import state_for
from edgefed.store.identity import RoleRecord, Roles

PROHIBITED_IMPLIED = frozenset({"admin"})
READ = ("list", "show", "list_implied_roles", "get_implied_role", "check_implied_role",
        "list_role_inferences")  # fmt: skip


class Role(KeystoneResource[RoleRecord, Roles]):
    key = "role"
    collection_key = "roles"
    path = "/v3/roles"
    attributes = ("id", "name", "domain_id", "description")
    access = KeystonePolicy(anyone=READ)
    filters = {**exact("name"), "domain_id": Filter(description="Domain roles (none here).")}
    store_class = Roles
    create_body = RoleCreateBody
    update_body = RoleUpdateBody
    required = ("name",)
    immutable = ("domain_id",)

    def view(self, role: RoleRecord, call: Call) -> dict[str, Any]:
        return {**super().view(role, call), "options": {}}

    def ref(self, call: Call, role_id: str, name: str) -> dict[str, Any]:
        return {"id": role_id, "name": name, "links": {"self": self.url(call, f"/roles/{role_id}")}}

    async def records(self, call: Call, repo: Roles) -> Sequence[RoleRecord]:
        if call.query.get("domain_id"):
            return []
        return await super().records(call, repo)

    async def create(self, call: Call, repo: Roles) -> RoleRecord:
        r = call.model(RoleCreateBody).role
        if r.domain_id is not None:
            raise ValidationFailed("Domain-specific roles are not supported.", field="domain_id")
        new = RoleRecord(
            id=predictable_id("role", r.name, domain_id=""),
            name=r.name,
            description=r.description or "",
            extra=r.extras(),
        )
        return await repo.create(new=new)

    async def before_delete(self, call: Call, repo: Roles, role: RoleRecord) -> None:
        # Who holds the role (directly or through a group): read now, revoked once the
        # role and its assignments are gone.
        repos = state_for(call.ctx).repos
        holders = await repos.assignments.list(role_ids=[role.id])
        users = {a.actor_id for a in holders if a.actor_type == "user"}
        for group_id in sorted({a.actor_id for a in holders if a.actor_type == "group"}):
            users.update(m.id for m in await repos.users.in_group(group_id))
        revoke_later(call, sorted(users))

    async def after_write(
        self, call: Call, verb: str, before: RoleRecord | None, after: RoleRecord | None
    ) -> None:
        if verb == "delete":
            await revoke_pending(call)

    # -- implied roles ---------------------------------------------------------------------

    def inference(self, call: Call, prior: RoleRecord, implies: Any, path: str) -> dict[str, Any]:
        return {
            "role_inference": {
                "prior_role": self.ref(call, prior.id, prior.name),
                "implies": implies,
            },
            "links": {"self": self.url(call, path)},
        }

    async def _implied(self, call: Call, prior: RoleRecord) -> RoleRecord:
        """The implied role of the path, which ``prior`` must imply."""
        implied = await self.find(call, call.path("implied_id"))
        implications = state_for(call.ctx).repos.implications
        if not await implications.contains(prior_role_id=prior.id, implied_role_id=implied.id):
            raise NotFound(f"{prior.id} does not imply {implied.id}.")
        return implied

    @action("PUT", "/implies/{implied_id}", status_code=201, verb="create_implied_role")
    async def imply(self, call: Call, repo: Roles, prior: RoleRecord) -> Json:
        """Make a role imply another."""
        implied = await self.find(call, call.path("implied_id"))
        if implied.name in PROHIBITED_IMPLIED:
            raise Forbidden(f"{implied.name} may not be an implied role.")
        state = state_for(call.ctx)
        if prior.id in (await role_graph(state)).expand({implied.id}):
            raise BadRequest(
                f"Role {implied.id} already implies {prior.id}: this inference would make a cycle."
            )
        await state.repos.implications.add(prior_role_id=prior.id, implied_role_id=implied.id)
        ref = self.ref(call, implied.id, implied.name)
        path = f"/roles/{prior.id}/implies/{implied.id}"
        return Json(self.inference(call, prior, ref, path), status_code=201)

    @action("GET", "/implies/{implied_id}", verb="get_implied_role")
    async def implication(self, call: Call, repo: Roles, prior: RoleRecord) -> dict[str, Any]:
        """Show that a role implies another."""
        implied = await self._implied(call, prior)
        ref = self.ref(call, implied.id, implied.name)
        return self.inference(call, prior, ref, f"/roles/{prior.id}/implies/{implied.id}")

    @action("HEAD", "/implies/{implied_id}", status_code=204, verb="check_implied_role")
    async def check_implication(self, call: Call, repo: Roles, prior: RoleRecord) -> None:
        """Check that a role implies another."""
        await self._implied(call, prior)

    @action("DELETE", "/implies/{implied_id}", status_code=204, verb="delete_implied_role")
    async def unimply(self, call: Call, repo: Roles, prior: RoleRecord) -> None:
        """Make a role stop implying another."""
        implied = await self._implied(call, prior)
        await state_for(call.ctx).repos.implications.remove(
            prior_role_id=prior.id, implied_role_id=implied.id
        )

    @action("GET", "/implies", verb="list_implied_roles")
    async def implied_roles(self, call: Call, repo: Roles, prior: RoleRecord) -> dict[str, Any]:
        """The roles a role implies (directly)."""
        graph = await role_graph(state_for(call.ctx))
        implies = [self.ref(call, i, graph.names[i]) for i in graph.implies.get(prior.id, ())]
        return self.inference(call, prior, implies, f"/roles/{prior.id}/implies")

    def inferences(self, call: Call, graph: RoleGraph) -> list[dict[str, Any]]:
        return [
            {
                "prior_role": self.ref(call, prior, graph.names[prior]),
                "implies": [self.ref(call, i, graph.names[i]) for i in implied],
            }
            for prior, implied in sorted(graph.implies.items(), key=lambda kv: graph.names[kv[0]])
        ]


ROLE = Role()
router = APIRouter(route_class=DeclaredRoute)


@router.get("/v3/role_inferences")
async def list_role_inferences(request: Request) -> Json:
    """Every role's implied roles."""
    call = await begin(ROLE, request, "list_role_inferences")
    graph = await role_graph(state_for(call.ctx))
    return Json(
        {
            "role_inferences": ROLE.inferences(call, graph),
            "links": {"self": ROLE.url(call, "/role_inferences"), "previous": None, "next": None},
        }
    )
