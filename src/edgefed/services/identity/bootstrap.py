"""Bootstrap on every start, idempotently: what ``keystone-manage bootstrap`` creates.

The default domain, the roles admin/member/reader (admin implies member, member implies
reader), the admin project, the admin user (its password is set when the user is
created, never overwritten afterwards) and the admin role for it on the admin project
and on the system. IDs are predictable, so every site bootstraps the same IDs.
"""

from __future__ import annotations

from edgefed.api.context import SiteContext
from edgefed.core.ids import DEFAULT_DOMAIN_ID, DEFAULT_DOMAIN_NAME, predictable_id
from edgefed.services.identity.passwords import hash_secret
from edgefed.services.identity.state import state_for
from edgefed.store.identity import (
    AssignmentRecord,
    DomainRecord,
    ProjectRecord,
    RoleRecord,
    UserRecord,
)

DEFAULT_ROLES = ("admin", "member", "reader")
DEFAULT_IMPLICATIONS = (("admin", "member"), ("member", "reader"))


def role_id(name: str) -> str:
    return predictable_id("role", name, domain_id="")


async def bootstrap(ctx: SiteContext) -> None:
    repos = state_for(ctx).repos
    settings = ctx.settings
    if await repos.domains.get(id=DEFAULT_DOMAIN_ID) is None:
        default = DomainRecord(
            id=DEFAULT_DOMAIN_ID, name=DEFAULT_DOMAIN_NAME, description="The default domain"
        )
        await repos.domains.create(new=default)
    for name in DEFAULT_ROLES:
        if await repos.roles.get(id=role_id(name)) is None:
            await repos.roles.create(new=RoleRecord(id=role_id(name), name=name))
    existing = set(await repos.implications.all())
    for prior, implied in DEFAULT_IMPLICATIONS:
        if (role_id(prior), role_id(implied)) not in existing:
            await repos.implications.add(
                prior_role_id=role_id(prior), implied_role_id=role_id(implied)
            )
    project_id = predictable_id("project", settings.admin_project, domain_id=DEFAULT_DOMAIN_ID)
    if await repos.projects.get(id=project_id) is None:
        project = ProjectRecord(
            id=project_id,
            name=settings.admin_project,
            domain_id=DEFAULT_DOMAIN_ID,
            description="Bootstrap project for initializing the cloud.",
        )
        await repos.projects.create(new=project)
    user_id = predictable_id("user", settings.admin_user, domain_id=DEFAULT_DOMAIN_ID)
    if await repos.users.get(id=user_id) is None:
        admin = UserRecord(
            id=user_id,
            name=settings.admin_user,
            domain_id=DEFAULT_DOMAIN_ID,
            password_hash=await hash_secret(settings.admin_password),
            password_set_at=ctx.clock(),
        )
        await repos.users.create(new=admin)
    for target_type, target_id in (("project", project_id), ("system", "all")):
        await repos.assignments.grant(
            assignment=AssignmentRecord(
                actor_type="user",
                actor_id=user_id,
                target_type=target_type,
                target_id=target_id,
                role_id=role_id("admin"),
            )
        )
