"""Group membership, as a resource nested in groups: ``GET /v3/groups/{g}/users`` lists
the members; ``PUT``, ``HEAD`` (or ``GET``) and ``DELETE /v3/groups/{g}/users/{u}`` add,
check and remove one. Admin only, but a user may check its own membership. Leaving a
group revokes the user's tokens (the group's roles are gone); a group received from a
sync source changes only there (409)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from edgefed.api.resource import Call, action
from edgefed.core.errors import NotFound
from edgefed.services.identity.groups import GROUP
from edgefed.services.identity.keystone import (
    KeystonePolicy,
    KeystoneResource,
    head_and_get,
    itself,
)
from edgefed.services.identity.revoking import revoke_user
from edgefed.services.identity.state import state_for
from edgefed.services.identity.users import USER
from edgefed.store.identity import UserRecord, Users


def _not_in(call: Call, user: UserRecord) -> NotFound:
    return NotFound(f"User '{user.id}' not found in group '{call.parent.id}'.")


class Member(KeystoneResource[UserRecord, Users]):
    key = "user"
    collection_key = "users"
    path = "/v3/groups/{group_id}/users"
    parent = GROUP
    verbs = frozenset({"list"})
    access = KeystonePolicy(
        own={"check_user_in_group": itself},
        rules={"list": "list_users_in_group"},
    )

    store_class = Users

    def view(self, user: UserRecord, call: Call) -> dict[str, Any]:
        return USER.view(user, call)

    async def records(self, call: Call, repo: Users) -> Sequence[UserRecord]:
        return await repo.in_group(call.parent.id)

    @action("PUT", "", status_code=204, verb="add_user_to_group")
    async def add(self, call: Call, repo: Users, user: UserRecord) -> None:
        """Add a user to a group."""
        GROUP.check_unlocked(call.of(GROUP), call.parent)
        await state_for(call.ctx).repos.members.add(group_id=call.parent.id, user_id=user.id)

    async def _check(self, call: Call, repo: Users, user: UserRecord) -> None:
        members = state_for(call.ctx).repos.members
        if not await members.contains(group_id=call.parent.id, user_id=user.id):
            raise _not_in(call, user)

    check, check_get = head_and_get(
        "", verb="check_user_in_group", summary="Whether a user is in a group (204) or not (404)."
    )(_check)

    @action("DELETE", "", status_code=204, verb="remove_user_from_group")
    async def remove(self, call: Call, repo: Users, user: UserRecord) -> None:
        """Remove a user from a group; its tokens are revoked."""
        GROUP.check_unlocked(call.of(GROUP), call.parent)
        state = state_for(call.ctx)
        if not await state.repos.members.remove(group_id=call.parent.id, user_id=user.id):
            raise _not_in(call, user)
        await revoke_user(state, user.id)


MEMBER = Member()
