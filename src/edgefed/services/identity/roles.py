"""/v3/roles and implied roles (/v3/roles/{prior}/implies/{implied}, /v3/role_inferences).

Roles are global (ID = uuid5 of the name, same on every site). The default chain is
admin → member → reader; Keystone forbids implying ``admin`` and cycles.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from edgefed.api.auth import Principal, current_principal
from edgefed.api.responses import Json
from edgefed.core.errors import BadRequest, Forbidden, NotFound, ValidationFailed
from edgefed.core.ids import predictable_id
from edgefed.services.identity.common import must_get, refuse_immutable
from edgefed.services.identity.grants import role_graph
from edgefed.services.identity.guard import authorize, ensure_local
from edgefed.services.identity.revoking import revoke_user
from edgefed.services.identity.schemas import RoleCreateBody, RoleUpdateBody
from edgefed.services.identity.state import IdentityState, identity_state
from edgefed.services.identity.views import api_url, collection, role_ref, role_view
from edgefed.store.identity import roles

router = APIRouter()
PROHIBITED_IMPLIED = frozenset({"admin"})


@router.post("/v3/roles", status_code=201)
async def create_role(
    body: RoleCreateBody,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    authorize(principal, "create_role")
    r = body.role
    if r.domain_id is not None:
        raise ValidationFailed("Domain-specific roles are not supported.", field="domain_id")
    row = await state.repo.create(
        roles,
        {
            "id": predictable_id("role", r.name, domain_id=""),
            "name": r.name,
            "description": r.description or "",
            "extra": r.extras(),
        },
        what="role",
    )
    return Json({"role": role_view(state, row)}, status_code=201)


@router.get("/v3/roles")
async def list_roles(
    request: Request,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    q = request.query_params
    if q.get("domain_id"):
        return Json(collection(state, "roles", [], path="/roles"))
    rows = await state.repo.list_rows(roles, filters={"name": q.get("name")})
    return Json(collection(state, "roles", (role_view(state, r) for r in rows), path="/roles"))


@router.get("/v3/roles/{role_id}")
async def get_role(
    role_id: str,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    row = await must_get(state, roles, role_id, "role")
    return Json({"role": role_view(state, row)})


@router.patch("/v3/roles/{role_id}")
async def update_role(
    role_id: str,
    body: RoleUpdateBody,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    authorize(principal, "update_role")
    row = await must_get(state, roles, role_id, "role")
    ensure_local(row, "Role")
    refuse_immutable(body.role.extras(), "domain_id")
    changes = body.role.given()
    if "name" in changes and changes["name"] is None:
        raise ValidationFailed("Invalid input for field 'name': None", field="name")
    if "description" in changes and changes["description"] is None:
        changes["description"] = ""
    if body.role.extras():
        changes["extra"] = {**row["extra"], **body.role.extras()}
    updated = await state.repo.update(roles, role_id, changes, what="role")
    assert updated is not None
    return Json({"role": role_view(state, updated)})


@router.delete("/v3/roles/{role_id}", status_code=204)
async def delete_role(
    role_id: str,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Response:
    authorize(principal, "delete_role")
    row = await must_get(state, roles, role_id, "role")
    ensure_local(row, "Role")
    holders = await state.repo.list_assignments(role_ids=[role_id])
    await state.repo.delete(roles, role_id)
    for user_id in {a["actor_id"] for a in holders if a["actor_type"] == "user"}:
        await revoke_user(state, user_id)
    for group_id in {a["actor_id"] for a in holders if a["actor_type"] == "group"}:
        for member in await state.repo.members_of(group_id):
            await revoke_user(state, member["id"])
    return Response(status_code=204)


# ---- implied roles ---------------------------------------------------------------------


def _inference(state: IdentityState, prior: dict[str, Any], implied: Any) -> dict[str, Any]:
    return {"prior_role": role_ref(state, prior["id"], prior["name"]), "implies": implied}


@router.put("/v3/roles/{prior_id}/implies/{implied_id}", status_code=201)
async def create_implied_role(
    prior_id: str,
    implied_id: str,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    authorize(principal, "create_implied_role")
    prior = await must_get(state, roles, prior_id, "role")
    implied = await must_get(state, roles, implied_id, "role")
    if implied["name"] in PROHIBITED_IMPLIED:
        raise Forbidden(f"{implied['name']} may not be an implied role.")
    graph = await role_graph(state)
    if prior_id in graph.expand({implied_id}):
        raise BadRequest(
            f"Role {implied_id} already implies {prior_id}: this inference would make a cycle."
        )
    await state.repo.add_implication(prior_id, implied_id)
    return Json(
        {
            "role_inference": _inference(
                state, prior, role_ref(state, implied["id"], implied["name"])
            ),
            "links": {"self": api_url(state, f"/roles/{prior_id}/implies/{implied_id}")},
        },
        status_code=201,
    )


async def _existing_inference(
    state: IdentityState, prior_id: str, implied_id: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    prior = await must_get(state, roles, prior_id, "role")
    implied = await must_get(state, roles, implied_id, "role")
    if (prior_id, implied_id) not in set(await state.repo.implications()):
        raise NotFound(f"{prior_id} does not imply {implied_id}.")
    return prior, implied


@router.get("/v3/roles/{prior_id}/implies/{implied_id}")
async def get_implied_role(
    prior_id: str,
    implied_id: str,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    prior, implied = await _existing_inference(state, prior_id, implied_id)
    return Json(
        {
            "role_inference": _inference(
                state, prior, role_ref(state, implied["id"], implied["name"])
            ),
            "links": {"self": api_url(state, f"/roles/{prior_id}/implies/{implied_id}")},
        }
    )


@router.head("/v3/roles/{prior_id}/implies/{implied_id}", status_code=204)
async def check_implied_role(
    prior_id: str,
    implied_id: str,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Response:
    await _existing_inference(state, prior_id, implied_id)
    return Response(status_code=204)


@router.delete("/v3/roles/{prior_id}/implies/{implied_id}", status_code=204)
async def delete_implied_role(
    prior_id: str,
    implied_id: str,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Response:
    authorize(principal, "delete_implied_role")
    await _existing_inference(state, prior_id, implied_id)
    await state.repo.remove_implication(prior_id, implied_id)
    return Response(status_code=204)


@router.get("/v3/roles/{prior_id}/implies")
async def list_implied_roles(
    prior_id: str,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    prior = await must_get(state, roles, prior_id, "role")
    graph = await role_graph(state)
    implied = [role_ref(state, i, graph.names[i]) for i in graph.implies.get(prior_id, ())]
    return Json(
        {
            "role_inference": _inference(state, prior, implied),
            "links": {"self": api_url(state, f"/roles/{prior_id}/implies")},
        }
    )


@router.get("/v3/role_inferences")
async def list_role_inferences(
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    graph = await role_graph(state)
    inferences = [
        {
            "prior_role": role_ref(state, prior, graph.names[prior]),
            "implies": [role_ref(state, i, graph.names[i]) for i in implied],
        }
        for prior, implied in sorted(graph.implies.items(), key=lambda kv: graph.names[kv[0]])
    ]
    return Json(
        {
            "role_inferences": inferences,
            "links": {"self": api_url(state, "/role_inferences"), "previous": None, "next": None},
        }
    )
