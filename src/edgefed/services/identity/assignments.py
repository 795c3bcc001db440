"""Role assignments: grants on projects, domains and the system; GET /v3/role_assignments.

Grant paths are Keystone's: ``/v3/{projects|domains}/{id}/{users|groups}/{id}/roles/{id}``
and ``/v3/system/{users|groups}/{id}/roles/{id}`` (PUT grant, HEAD/GET check, DELETE
revoke) and the same without the role ID to list. Removing a grant revokes the tokens
it backed (the user's, or every member's of a group, on that scope).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from edgefed.api.auth import Principal, current_principal
from edgefed.api.responses import Json
from edgefed.core.errors import NotFound
from edgefed.services.identity.common import must_get
from edgefed.services.identity.guard import authorize, ensure_local
from edgefed.services.identity.revoking import revoke_user
from edgefed.services.identity.state import IdentityState, identity_state
from edgefed.services.identity.views import collection, role_view
from edgefed.store.identity import domains, groups, projects, roles, users

router = APIRouter()

TARGET_TABLES = {"project": projects, "domain": domains}
ACTOR_TABLES = {"user": users, "group": groups}
SYSTEM_ID = "all"


def grant_path(target_type: str, target_id: str, actor_type: str, actor_id: str) -> str:
    if target_type == "system":
        return f"/system/{actor_type}s/{actor_id}/roles"
    return f"/{target_type}s/{target_id}/{actor_type}s/{actor_id}/roles"


async def _check_parties(
    state: IdentityState, target_type: str, target_id: str, actor_type: str, actor_id: str
) -> None:
    if target_type != "system":
        await must_get(state, TARGET_TABLES[target_type], target_id, target_type)
    await must_get(state, ACTOR_TABLES[actor_type], actor_id, actor_type)


async def _revoke_backed_tokens(
    state: IdentityState, target_type: str, target_id: str, actor_type: str, actor_id: str
) -> None:
    user_ids = [actor_id]
    if actor_type == "group":
        user_ids = [m["id"] for m in await state.repo.members_of(actor_id)]
    for user_id in user_ids:
        await revoke_user(
            state, user_id, project_id=target_id if target_type == "project" else None
        )


Handler = Callable[..., Awaitable[Response]]


def _grant_handlers(target_type: str, actor_type: str) -> dict[str, Handler]:
    def ids(request: Request) -> tuple[str, str]:
        params = request.path_params
        return params.get("target_id", SYSTEM_ID), params["actor_id"]

    async def put(
        request: Request,
        role_id: str,
        principal: Principal = Depends(current_principal),
        state: IdentityState = Depends(identity_state),
    ) -> Response:
        authorize(principal, f"create_{'system_' if target_type == 'system' else ''}grant")
        target_id, actor_id = ids(request)
        await _check_parties(state, target_type, target_id, actor_type, actor_id)
        await must_get(state, roles, role_id, "role")
        await state.repo.grant(
            actor_type=actor_type,
            actor_id=actor_id,
            target_type=target_type,
            target_id=target_id,
            role_id=role_id,
        )
        return Response(status_code=204)

    async def check(
        request: Request,
        role_id: str,
        principal: Principal = Depends(current_principal),
        state: IdentityState = Depends(identity_state),
    ) -> Response:
        target_id, actor_id = ids(request)
        authorize(principal, "check_grant", self_user_id=actor_id if actor_type == "user" else None)
        await _check_parties(state, target_type, target_id, actor_type, actor_id)
        await must_get(state, roles, role_id, "role")
        found = await state.repo.get_assignment(
            actor_type=actor_type,
            actor_id=actor_id,
            target_type=target_type,
            target_id=target_id,
            role_id=role_id,
        )
        if found is None:
            raise NotFound(f"Could not find role assignment with role: {role_id}.")
        return Response(status_code=204)

    async def remove(
        request: Request,
        role_id: str,
        principal: Principal = Depends(current_principal),
        state: IdentityState = Depends(identity_state),
    ) -> Response:
        authorize(principal, "revoke_grant")
        target_id, actor_id = ids(request)
        await _check_parties(state, target_type, target_id, actor_type, actor_id)
        key = {
            "actor_type": actor_type,
            "actor_id": actor_id,
            "target_type": target_type,
            "target_id": target_id,
            "role_id": role_id,
        }
        found = await state.repo.get_assignment(**key)
        if found is None:
            raise NotFound(f"Could not find role assignment with role: {role_id}.")
        ensure_local({"origin": found["origin"], "name": "Role assignment"}, "Role assignment")
        await state.repo.revoke(**key)
        await _revoke_backed_tokens(state, target_type, target_id, actor_type, actor_id)
        return Response(status_code=204)

    async def listing(
        request: Request,
        principal: Principal = Depends(current_principal),
        state: IdentityState = Depends(identity_state),
    ) -> Json:
        target_id, actor_id = ids(request)
        authorize(principal, "list_grants", self_user_id=actor_id if actor_type == "user" else None)
        await _check_parties(state, target_type, target_id, actor_type, actor_id)
        rows = await state.repo.list_assignments(
            actors=[(actor_type, actor_id)], target_type=target_type, target_id=target_id
        )
        found = await state.repo.list_rows(roles, filters={"id": {r["role_id"] for r in rows}})
        return Json(
            collection(
                state,
                "roles",
                (role_view(state, r) for r in found),
                path=grant_path(target_type, target_id, actor_type, actor_id),
            )
        )

    return {"put": put, "check": check, "remove": remove, "listing": listing}


def _register() -> None:
    for target_type in ("project", "domain", "system"):
        for actor_type in ("user", "group"):
            if target_type == "system":
                base = f"/v3/system/{actor_type}s/{{actor_id}}/roles"
            else:
                base = f"/v3/{target_type}s/{{target_id}}/{actor_type}s/{{actor_id}}/roles"
            handlers = _grant_handlers(target_type, actor_type)
            one = base + "/{role_id}"
            router.add_api_route(one, handlers["put"], methods=["PUT"], status_code=204)
            router.add_api_route(one, handlers["check"], methods=["HEAD", "GET"], status_code=204)
            router.add_api_route(one, handlers["remove"], methods=["DELETE"], status_code=204)
            router.add_api_route(base, handlers["listing"], methods=["GET"])


_register()
