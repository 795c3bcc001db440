"""Keystone's default roles as policy: ``reader`` ⊂ ``member`` ⊂ ``admin``.

Tokens carry the effective roles (implied roles expanded), so a check is a set lookup.
The rules follow the "secure RBAC" defaults of the OpenStack services:

- admin (any scope): everything, in every project.
- member of the project: read and write that project's resources.
- reader of the project: read that project's resources.
"""

from __future__ import annotations

from edgefed.api.auth import Principal
from edgefed.core.errors import Forbidden

# A region operator holds a role named ``region:<value>`` (docs/fleet.md): the fleet
# views and the sites registry show it the sites of those regions only.
REGION_ROLE_PREFIX = "region:"


def region_roles(principal: Principal) -> frozenset[str]:
    """The regions the caller's ``region:<value>`` roles name (none: empty)."""
    size = len(REGION_ROLE_PREFIX)
    return frozenset(
        name[size:]
        for name in principal.role_names
        if name.startswith(REGION_ROLE_PREFIX) and len(name) > size
    )


def require_admin(principal: Principal, action: str) -> None:
    if not principal.is_admin:
        raise Forbidden(f"Policy doesn't allow {action} to be performed (admin role required).")


def can_read_project(principal: Principal, project_id: str | None) -> bool:
    if principal.is_admin:
        return True
    return (
        principal.project_id is not None
        and principal.project_id == project_id
        and bool(principal.role_names & {"reader", "member"})
    )


def can_write_project(principal: Principal, project_id: str | None) -> bool:
    if principal.is_admin:
        return True
    return (
        principal.project_id is not None
        and principal.project_id == project_id
        and "member" in principal.role_names
    )


def require_read(principal: Principal, project_id: str | None, action: str) -> None:
    if not can_read_project(principal, project_id):
        raise Forbidden(f"Policy doesn't allow {action} to be performed.")


def require_write(principal: Principal, project_id: str | None, action: str) -> None:
    if not can_write_project(principal, project_id):
        raise Forbidden(
            f"Policy doesn't allow {action} to be performed (member role on the project required)."
        )


def require_project_scope(principal: Principal) -> str:
    if principal.project_id is None:
        raise Forbidden("This call needs a project-scoped token.")
    return principal.project_id
