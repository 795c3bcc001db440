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
from edgefed.store.identity import domains, projects, roles, users

DEFAULT_ROLES = ("admin", "member", "reader")
DEFAULT_IMPLICATIONS = (("admin", "member"), ("member", "reader"))


def role_id(name: str) -> str:
    return predictable_id("role", name, domain_id="")


async def bootstrap(ctx: SiteContext) -> None:
    state = state_for(ctx)
    repo = state.repo
    settings = ctx.settings
    if await repo.get(domains, DEFAULT_DOMAIN_ID) is None:
        await repo.create(
            domains,
            {
                "id": DEFAULT_DOMAIN_ID,
                "name": DEFAULT_DOMAIN_NAME,
                "description": "The default domain",
                "enabled": True,
                "tags": [],
                "extra": {},
            },
            what="domain",
        )
    for name in DEFAULT_ROLES:
        if await repo.get(roles, role_id(name)) is None:
            await repo.create(
                roles,
                {"id": role_id(name), "name": name, "description": "", "extra": {}},
                what="role",
            )
    existing = set(await repo.implications())
    for prior, implied in DEFAULT_IMPLICATIONS:
        if (role_id(prior), role_id(implied)) not in existing:
            await repo.add_implication(role_id(prior), role_id(implied))
    project_id = predictable_id("project", settings.admin_project, domain_id=DEFAULT_DOMAIN_ID)
    if await repo.get(projects, project_id) is None:
        await repo.create(
            projects,
            {
                "id": project_id,
                "name": settings.admin_project,
                "domain_id": DEFAULT_DOMAIN_ID,
                "description": "Bootstrap project for initializing the cloud.",
                "enabled": True,
                "tags": [],
                "extra": {},
            },
            what="project",
        )
    user_id = predictable_id("user", settings.admin_user, domain_id=DEFAULT_DOMAIN_ID)
    if await repo.get(users, user_id) is None:
        await repo.create(
            users,
            {
                "id": user_id,
                "name": settings.admin_user,
                "domain_id": DEFAULT_DOMAIN_ID,
                "enabled": True,
                "password_hash": await hash_secret(settings.admin_password),
                "password_set_at": ctx.clock(),
                "extra": {},
            },
            what="user",
        )
    admin_role = role_id("admin")
    await repo.grant(
        actor_type="user",
        actor_id=user_id,
        target_type="project",
        target_id=project_id,
        role_id=admin_role,
    )
    await repo.grant(
        actor_type="user",
        actor_id=user_id,
        target_type="system",
        target_id="all",
        role_id=admin_role,
    )
