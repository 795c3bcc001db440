"""Who may see and change an image (Glance's default policy, secure-RBAC flavour).

- admin: every image, every action; only admin may make an image ``public``.
- the owner project: reader role reads, member role writes.
- anyone: ``public`` and ``community`` images (read only).
- members of a ``shared`` image: read it (lists show it once the member accepted).

An image that is not visible is answered 404 (not 403), as Glance does, so its
existence does not leak. An image delivered by a sync source is read-only here.
"""

from __future__ import annotations

from edgefed.api.auth import Principal
from edgefed.core.errors import Forbidden, Locked, NotFound
from edgefed.store.image import ImageRecord, ImageRepository


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


async def visible_image(repo: ImageRepository, principal: Principal, image_id: str) -> ImageRecord:
    """The image if the caller may see it; NotFound otherwise."""
    record = await repo.get(image_id)
    if record is not None and await _can_see(repo, principal, record):
        return record
    raise NotFound(f"No image found with ID {image_id}")


async def _can_see(repo: ImageRepository, principal: Principal, record: ImageRecord) -> bool:
    if principal.is_admin or is_owner_reader(principal, record):
        return True
    if record.visibility in ("public", "community"):
        return True
    if record.visibility == "shared" and principal.project_id is not None:
        return await repo.member(record.id, principal.project_id) is not None
    return False


def require_write(principal: Principal, record: ImageRecord, action: str) -> None:
    if not can_write(principal, record):
        raise Forbidden(
            f"You are not authorized to {action} image {record.id} "
            "(the member role on the owner project is required)."
        )


def require_unlocked(record: ImageRecord) -> None:
    if record.origin is not None:
        raise Locked(
            f"Image {record.id} is synchronised from site {record.origin}; "
            f"change it there, not here.",
            source=record.origin,
        )


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
