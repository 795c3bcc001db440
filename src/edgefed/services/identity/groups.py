"""/v3/groups: CRUD and membership (PUT/HEAD/DELETE /v3/groups/{g}/users/{u})."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from edgefed.api.auth import Principal, current_principal
from edgefed.api.responses import Json
from edgefed.core.errors import NotFound, ValidationFailed
from edgefed.core.ids import DEFAULT_DOMAIN_ID, predictable_id
from edgefed.services.identity.common import must_get, refuse_immutable
from edgefed.services.identity.guard import authorize, ensure_local
from edgefed.services.identity.revoking import revoke_user
from edgefed.services.identity.schemas import GroupCreateBody, GroupUpdateBody
from edgefed.services.identity.state import IdentityState, identity_state
from edgefed.services.identity.views import collection, group_view, user_view
from edgefed.store.identity import domains, groups, users

router = APIRouter()


@router.post("/v3/groups", status_code=201)
async def create_group(
    body: GroupCreateBody,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    authorize(principal, "create_group")
    g = body.group
    domain_id = g.domain_id or DEFAULT_DOMAIN_ID
    if await state.repo.get(domains, domain_id) is None:
        raise ValidationFailed(f"Could not find domain: {domain_id}.", field="domain_id")
    row = await state.repo.create(
        groups,
        {
            "id": predictable_id("group", g.name, domain_id=domain_id),
            "name": g.name,
            "domain_id": domain_id,
            "description": g.description or "",
            "extra": g.extras(),
        },
        what="group",
    )
    return Json({"group": group_view(state, row)}, status_code=201)


@router.get("/v3/groups")
async def list_groups(
    request: Request,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    authorize(principal, "list_groups")
    q = request.query_params
    rows = await state.repo.list_rows(
        groups, filters={"name": q.get("name"), "domain_id": q.get("domain_id")}
    )
    return Json(collection(state, "groups", (group_view(state, r) for r in rows), path="/groups"))


@router.get("/v3/groups/{group_id}")
async def get_group(
    group_id: str,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    authorize(principal, "get_group")
    row = await must_get(state, groups, group_id, "group")
    return Json({"group": group_view(state, row)})


@router.patch("/v3/groups/{group_id}")
async def update_group(
    group_id: str,
    body: GroupUpdateBody,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    authorize(principal, "update_group")
    row = await must_get(state, groups, group_id, "group")
    ensure_local(row, "Group")
    refuse_immutable(body.group.extras(), "domain_id")
    changes = body.group.given()
    if "name" in changes and changes["name"] is None:
        raise ValidationFailed("Invalid input for field 'name': None", field="name")
    if "description" in changes and changes["description"] is None:
        changes["description"] = ""
    if body.group.extras():
        changes["extra"] = {**row["extra"], **body.group.extras()}
    updated = await state.repo.update(groups, group_id, changes, what="group")
    assert updated is not None
    return Json({"group": group_view(state, updated)})


@router.delete("/v3/groups/{group_id}", status_code=204)
async def delete_group(
    group_id: str,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Response:
    authorize(principal, "delete_group")
    row = await must_get(state, groups, group_id, "group")
    ensure_local(row, "Group")
    members = await state.repo.members_of(group_id)
    await state.repo.delete(groups, group_id)
    for member in members:
        await revoke_user(state, member["id"])
    return Response(status_code=204)


@router.get("/v3/groups/{group_id}/users")
async def group_users(
    group_id: str,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    authorize(principal, "list_users_in_group")
    await must_get(state, groups, group_id, "group")
    rows = await state.repo.members_of(group_id)
    return Json(
        collection(
            state, "users", (user_view(state, r) for r in rows), path=f"/groups/{group_id}/users"
        )
    )


@router.put("/v3/groups/{group_id}/users/{user_id}", status_code=204)
async def add_user_to_group(
    group_id: str,
    user_id: str,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Response:
    authorize(principal, "add_user_to_group")
    group = await must_get(state, groups, group_id, "group")
    ensure_local(group, "Group")
    await must_get(state, users, user_id, "user")
    await state.repo.add_member(group_id, user_id)
    return Response(status_code=204)


@router.head("/v3/groups/{group_id}/users/{user_id}", status_code=204)
@router.get("/v3/groups/{group_id}/users/{user_id}", status_code=204, include_in_schema=False)
async def check_user_in_group(
    group_id: str,
    user_id: str,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Response:
    authorize(principal, "check_user_in_group", self_user_id=user_id)
    await must_get(state, groups, group_id, "group")
    await must_get(state, users, user_id, "user")
    if not await state.repo.is_member(group_id, user_id):
        raise NotFound(f"User '{user_id}' not found in group '{group_id}'.")
    return Response(status_code=204)


@router.delete("/v3/groups/{group_id}/users/{user_id}", status_code=204)
async def remove_user_from_group(
    group_id: str,
    user_id: str,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Response:
    authorize(principal, "remove_user_from_group")
    group = await must_get(state, groups, group_id, "group")
    ensure_local(group, "Group")
    await must_get(state, users, user_id, "user")
    if not await state.repo.remove_member(group_id, user_id):
        raise NotFound(f"User '{user_id}' not found in group '{group_id}'.")
    await revoke_user(state, user_id)
    return Response(status_code=204)
