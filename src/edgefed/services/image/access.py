"""Who may see and change an image (Glance's default policy, secure-RBAC flavour), and
how Glance words it.

- admin: every image, every action; only admin may make an image ``public``.
- the owner project: reader role reads, member role writes.
- anyone: ``public`` and ``community`` images (read only).
- members of a ``shared`` image: read it (lists show it once the member accepted).

An image that is not visible is answered 404 (not 403), as Glance does, so its
existence does not leak. An image delivered by a sync source is read-only here.
"""

from __future__ import annotations

from edgefed.api.auth import Principal
from edgefed.api.bodies import BodyWording
from edgefed.api.resource import Access, Call, Dialect
from edgefed.core.errors import Forbidden
from edgefed.store.image import ImageMembers, ImageRecord

GLANCE = Dialect(
    body=BodyWording(
        empty="The request body is empty; a JSON document is required.",
        malformed="Malformed JSON in request body: {error}",
        not_object="The request body must be a JSON object.",
    ),
    not_found="No {key} found with ID {id}",
    forbidden="You are not authorized to {verb} {key} {id} ({why}).",
    locked="{title} {id} is synchronised from site {origin}; change it there, not here.",
    keyed_views=False,
    keyed_bodies=False,
)


def is_owner_reader(principal: Principal, record: ImageRecord) -> bool:
    return (
        principal.project_id is not None
        and principal.project_id == record.owner
        and bool(principal.role_names & {"reader", "member"})
    )


def can_write(principal: Principal, record: ImageRecord) -> bool:
    if principal.is_admin:
        return True
    return (
        principal.project_id is not None
        and principal.project_id == record.owner
        and principal.has_role("member")
    )


class ImageAccess(Access[ImageRecord]):
    def may_read(self, call: Call, record: ImageRecord) -> bool:
        principal = call.principal
        return (
            principal.is_admin
            or is_owner_reader(principal, record)
            or record.visibility in ("public", "community")
        )

    async def readable(self, call: Call, record: ImageRecord) -> bool:
        if self.may_read(call, record):
            return True
        project_id = call.principal.project_id
        if record.visibility == "shared" and project_id is not None:
            return await ImageMembers(call.ctx.store, record.id).get(id=project_id) is not None
        return False

    def check_write(self, call: Call, record: ImageRecord, verb: str) -> None:
        if not can_write(call.principal, record):
            why = "the member role on the owner project is required"
            raise call.refuse(verb, why, id=record.id)


def require_may_publicize(principal: Principal, visibility: str | None) -> None:
    if visibility == "public" and not principal.is_admin:
        raise Forbidden("Only an administrator may make an image public (publicize_image).")


def require_creator(principal: Principal) -> str:
    """The project that will own a new image; Forbidden for readers and unscoped tokens."""
    if principal.project_id is None:
        raise Forbidden("Creating an image needs a project-scoped token.")
    if not (principal.is_admin or principal.has_role("member")):
        raise Forbidden("You are not authorized to create images (member role required).")
    return principal.project_id
