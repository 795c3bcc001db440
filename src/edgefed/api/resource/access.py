"""Who may see and change the records of a resource.

Four questions, asked by the routes in this order:

1. ``admit(call, verb, id)``: before anything is looked up (Keystone's and the
   inventory's rule that only an admin calls at all: 403 whatever the id);
2. ``visible`` / ``readable``: which records the caller sees; one it does not see is
   answered 404, as if it did not exist (its existence does not leak);
3. ``check_write(call, record, verb)``: whether the caller may change what it sees
   (403, in the service's words: ``call.refuse``).

The sync lock (a record delivered by a sync source changes only there, 409) is the
resource's ``origin``, not a policy: it holds for an admin too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from edgefed.api.policy import require_admin
from edgefed.api.resource.call import Call

R = TypeVar("R")


class Access(Generic[R]):
    """Everyone sees and changes everything; subclasses narrow it."""

    def admit(self, call: Call, verb: str, id: str | None) -> None:
        """Refuse the call before any lookup (raise Forbidden)."""

    def may_read(self, call: Call, record: R) -> bool:
        return True

    async def readable(self, call: Call, record: R) -> bool:
        """Whether the caller sees ``record`` (override for rules that look things up)."""
        return self.may_read(call, record)

    async def visible(self, call: Call, records: Sequence[R]) -> Sequence[R]:
        """The records of a list the caller sees."""
        may_read = self.may_read
        return [record for record in records if may_read(call, record)]

    def check_write(self, call: Call, record: R, verb: str) -> None:
        """Refuse a change of ``record`` (raise ``call.refuse(verb, why)``)."""


class AdminOnly(Access[R]):
    """Only an admin calls, whatever the verb: 403 before any lookup."""

    def __init__(self, what: str):
        self.what = what

    def admit(self, call: Call, verb: str, id: str | None) -> None:
        require_admin(call.principal, self.what)


class ProjectOwned(Access[R]):
    """OpenStack's secure-RBAC defaults for records a project owns.

    Read: an admin; the owner project (with one of ``read_roles``, when given); anyone,
    when ``shared`` says the record is shared. Write: an admin, or a member of the
    owner project — a reader only reads.
    """

    def __init__(
        self,
        *,
        project: Callable[[R], str | None],
        shared: Callable[[R], bool] | None = None,
        read_roles: frozenset[str] | None = None,
        other_project: str = "the resource belongs to another project",
        not_member: str = "the member role on the project is required",
    ):
        self.project = project
        self.shared = shared
        self.read_roles = read_roles
        self.other_project = other_project
        self.not_member = not_member

    def may_read(self, call: Call, record: R) -> bool:
        principal = call.principal
        if principal.is_admin or (self.shared is not None and self.shared(record)):
            return True
        if principal.project_id is None or principal.project_id != self.project(record):
            return False
        return self.read_roles is None or bool(principal.role_names & self.read_roles)

    def check_write(self, call: Call, record: R, verb: str) -> None:
        self.check_owner(call, self.project(record), verb, id=call.resource.id_of(record))

    def check_owner(self, call: Call, project_id: str | None, verb: str, *, id: str = "") -> None:
        """Whether the caller may ``verb`` what ``project_id`` owns (a subnet is created
        on what the network's project owns)."""
        principal = call.principal
        if principal.is_admin:
            return
        if principal.project_id is None or principal.project_id != project_id:
            raise call.refuse(verb, self.other_project, id=id)
        if not principal.has_role("member"):
            raise call.refuse(verb, self.not_member, id=id)
