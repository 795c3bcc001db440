"""/v3/users: CRUD, the self-service password change, a user's projects and groups.

A user may read itself, change its own password and list its own projects and groups.
Disabling or deleting a user, or changing its password, revokes its tokens (a
revocation event on the user), as Keystone does.
"""

from __future__ import annotations

from typing import Any

from edgefed.api.resource import Call, action
from edgefed.core.errors import Unauthorized, ValidationFailed
from edgefed.core.ids import DEFAULT_DOMAIN_ID, predictable_id
from edgefed.services.identity.domains import require_domain
from edgefed.services.identity.grants import held_by
from edgefed.services.identity.groups import GROUP
from edgefed.services.identity.keystone import (
    ENABLED,
    KeystonePolicy,
    KeystoneResource,
    disables,
    exact,
    itself,
)
from edgefed.services.identity.passwords import hash_secret, verify_secret
from edgefed.services.identity.projects import PROJECT
from edgefed.services.identity.revoking import revoke_user
from edgefed.services.identity.schemas import PasswordChangeBody, UserCreateBody, UserUpdateBody
from edgefed.services.identity.state import state_for
from edgefed.store.identity import UserRecord, Users

SELF_SERVICE = ("show", "change_password", "list_user_projects", "list_groups_for_user")


class User(KeystoneResource[UserRecord, Users]):
    key = "user"
    collection_key = "users"
    path = "/v3/users"
    attributes = ("id", "name", "domain_id", "enabled")
    access = KeystonePolicy(own=dict.fromkeys(SELF_SERVICE, itself))
    filters = {**exact("name", "domain_id"), **ENABLED}
    store_class = Users
    create_body = UserCreateBody
    update_body = UserUpdateBody
    required = ("name", "enabled")
    immutable = ("domain_id",)

    def view(self, user: UserRecord, call: Call) -> dict[str, Any]:
        view = {**super().view(user, call), "password_expires_at": None, "options": {}}
        if user.default_project_id:
            view["default_project_id"] = user.default_project_id
        return view

    async def create(self, call: Call, repo: Users) -> UserRecord:
        u = call.model(UserCreateBody).user
        repos = state_for(call.ctx).repos
        domain_id = await require_domain(call, u.domain_id or DEFAULT_DOMAIN_ID)
        if u.default_project_id and await repos.projects.get(id=u.default_project_id) is None:
            raise ValidationFailed(
                f"Could not find project: {u.default_project_id}.", field="default_project_id"
            )
        password_hash = await hash_secret(u.password) if u.password is not None else None
        new = UserRecord(
            id=predictable_id("user", u.name, domain_id=domain_id),
            name=u.name,
            domain_id=domain_id,
            enabled=u.enabled,
            password_hash=password_hash,
            password_set_at=call.ctx.clock() if password_hash else None,
            default_project_id=u.default_project_id,
            extra=u.extras(),
        )
        return await repo.create(new=new)

    async def changes(self, call: Call, repo: Users, user: UserRecord) -> dict[str, Any]:
        changes = await super().changes(call, repo, user)
        password = changes.pop("password", None)
        if password is not None:
            changes["password_hash"] = await hash_secret(password)
            changes["password_set_at"] = call.ctx.clock()
        return changes

    async def after_write(
        self, call: Call, verb: str, before: UserRecord | None, after: UserRecord | None
    ) -> None:
        if verb == "delete" and before is not None:
            await revoke_user(state_for(call.ctx), before.id)
        elif verb == "update" and after is not None:
            body = call.model(UserUpdateBody).user
            if body.given().get("password") is not None or disables(body):
                await revoke_user(state_for(call.ctx), after.id)

    @action("POST", "/password", writes=True, status_code=204, body=PasswordChangeBody,
            verb="change_password")  # fmt: skip
    async def change_password(self, call: Call, repo: Users, user: UserRecord) -> None:
        """Change one's own password, proving the current one; its tokens are revoked."""
        change = call.model(PasswordChangeBody).user
        if not await verify_secret(user.password_hash, change.original_password):
            raise Unauthorized("The request you have made requires authentication.")
        changes = {
            "password_hash": await hash_secret(change.password),
            "password_set_at": call.ctx.clock(),
        }
        await repo.update(id=user.id, changes=changes)
        await revoke_user(state_for(call.ctx), user.id)

    @action("GET", "/projects", verb="list_user_projects")
    async def projects(self, call: Call, repo: Users, user: UserRecord) -> dict[str, Any]:
        """The projects where the user (or one of its groups) holds a role."""
        state = state_for(call.ctx)
        held = await held_by(state, user_id=user.id, target_type="project")
        found = await state.repos.projects.list(filters={"id": {a.target_id for a in held}})
        return PROJECT.collection(call, [PROJECT.view(p, call) for p in found])

    @action("GET", "/groups", verb="list_groups_for_user")
    async def groups(self, call: Call, repo: Users, user: UserRecord) -> dict[str, Any]:
        """The groups the user is in."""
        found = await state_for(call.ctx).repos.groups.of_user(user.id)
        return GROUP.collection(call, [GROUP.view(g, call) for g in found])


USER = User()
