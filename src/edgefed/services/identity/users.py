"""/v3/users: CRUD, self-service password change, a user's projects and groups.

Disabling or deleting a user, or changing its password, revokes its tokens (a
revocation event on the user), as Keystone does.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from edgefed.api.auth import Principal, current_principal
from edgefed.api.responses import Json
from edgefed.core.errors import Unauthorized, ValidationFailed
from edgefed.core.ids import DEFAULT_DOMAIN_ID, predictable_id
from edgefed.services.identity.common import must_get, query_flag, refuse_immutable
from edgefed.services.identity.guard import authorize, ensure_local
from edgefed.services.identity.passwords import hash_secret, verify_secret
from edgefed.services.identity.revoking import revoke_user
from edgefed.services.identity.schemas import PasswordChangeBody, UserCreateBody, UserUpdateBody
from edgefed.services.identity.state import IdentityState, identity_state
from edgefed.services.identity.views import collection, group_view, project_view, user_view
from edgefed.store.identity import domains, projects, users

router = APIRouter()


@router.post("/v3/users", status_code=201)
async def create_user(
    body: UserCreateBody,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    authorize(principal, "create_user")
    u = body.user
    domain_id = u.domain_id or DEFAULT_DOMAIN_ID
    if await state.repo.get(domains, domain_id) is None:
        raise ValidationFailed(f"Could not find domain: {domain_id}.", field="domain_id")
    if u.default_project_id and await state.repo.get(projects, u.default_project_id) is None:
        raise ValidationFailed(
            f"Could not find project: {u.default_project_id}.", field="default_project_id"
        )
    password_hash = await hash_secret(u.password) if u.password is not None else None
    row = await state.repo.create(
        users,
        {
            "id": predictable_id("user", u.name, domain_id=domain_id),
            "name": u.name,
            "domain_id": domain_id,
            "enabled": u.enabled,
            "password_hash": password_hash,
            "password_set_at": state.ctx.clock() if password_hash else None,
            "default_project_id": u.default_project_id,
            "extra": u.extras(),
        },
        what="user",
    )
    return Json({"user": user_view(state, row)}, status_code=201)


@router.get("/v3/users")
async def list_users(
    request: Request,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    authorize(principal, "list_users")
    q = request.query_params
    rows = await state.repo.list_rows(
        users,
        filters={
            "name": q.get("name"),
            "domain_id": q.get("domain_id"),
            "enabled": query_flag(q.get("enabled")),
        },
    )
    return Json(collection(state, "users", (user_view(state, r) for r in rows), path="/users"))


@router.get("/v3/users/{user_id}")
async def get_user(
    user_id: str,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    authorize(principal, "get_user", self_user_id=user_id)
    row = await must_get(state, users, user_id, "user")
    return Json({"user": user_view(state, row)})


@router.patch("/v3/users/{user_id}")
async def update_user(
    user_id: str,
    body: UserUpdateBody,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    authorize(principal, "update_user")
    row = await must_get(state, users, user_id, "user")
    ensure_local(row, "User")
    refuse_immutable(body.user.extras(), "domain_id")
    changes = body.user.given()
    for key in ("name", "enabled"):
        if key in changes and changes[key] is None:
            raise ValidationFailed(f"Invalid input for field '{key}': None", field=key)
    password = changes.pop("password", None)
    if password is not None:
        changes["password_hash"] = await hash_secret(password)
        changes["password_set_at"] = state.ctx.clock()
    if body.user.extras():
        changes["extra"] = {**row["extra"], **body.user.extras()}
    updated = await state.repo.update(users, user_id, changes, what="user")
    assert updated is not None
    if password is not None or changes.get("enabled") is False:
        await revoke_user(state, user_id)
    return Json({"user": user_view(state, updated)})


@router.delete("/v3/users/{user_id}", status_code=204)
async def delete_user(
    user_id: str,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Response:
    authorize(principal, "delete_user")
    row = await must_get(state, users, user_id, "user")
    ensure_local(row, "User")
    await state.repo.delete(users, user_id)
    await revoke_user(state, user_id)
    return Response(status_code=204)


@router.post("/v3/users/{user_id}/password", status_code=204)
async def change_password(
    user_id: str,
    body: PasswordChangeBody,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Response:
    """Self-service: the user proves it knows the current password."""
    authorize(principal, "change_password", self_user_id=user_id)
    row = await must_get(state, users, user_id, "user")
    ensure_local(row, "User")
    if not await verify_secret(row["password_hash"], body.user.original_password):
        raise Unauthorized("The request you have made requires authentication.")
    await state.repo.update(
        users,
        user_id,
        {
            "password_hash": await hash_secret(body.user.password),
            "password_set_at": state.ctx.clock(),
        },
        what="user",
    )
    await revoke_user(state, user_id)
    return Response(status_code=204)


@router.get("/v3/users/{user_id}/projects")
async def user_projects(
    user_id: str,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    authorize(principal, "list_user_projects", self_user_id=user_id)
    await must_get(state, users, user_id, "user")
    actors = [("user", user_id)] + [("group", g["id"]) for g in await state.repo.groups_of(user_id)]
    rows = await state.repo.list_assignments(actors=actors, target_type="project")
    found = await state.repo.list_rows(projects, filters={"id": {r["target_id"] for r in rows}})
    return Json(
        collection(
            state,
            "projects",
            (project_view(state, r) for r in found),
            path=f"/users/{user_id}/projects",
        )
    )


@router.get("/v3/users/{user_id}/groups")
async def user_groups(
    user_id: str,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    authorize(principal, "list_groups_for_user", self_user_id=user_id)
    await must_get(state, users, user_id, "user")
    rows = await state.repo.groups_of(user_id)
    return Json(
        collection(
            state, "groups", (group_view(state, r) for r in rows), path=f"/users/{user_id}/groups"
        )
    )
