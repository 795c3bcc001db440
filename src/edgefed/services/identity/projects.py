"""/v3/projects: CRUD with Keystone's filters (name, domain_id, enabled, parent_id, tags).

A token scoped to a project may read that project. Disabling or deleting a project
revokes the tokens scoped to it; a project with children is not deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from edgefed.api.resource import Call, Filter
from edgefed.core.errors import Forbidden, ValidationFailed
from edgefed.core.ids import DEFAULT_DOMAIN_ID, predictable_id
from edgefed.services.identity.domains import require_domain
from edgefed.services.identity.keystone import (
    ENABLED,
    KeystonePolicy,
    KeystoneResource,
    disables,
    exact,
    query_flag,
)
from edgefed.services.identity.revoking import revoke_scope
from edgefed.services.identity.schemas import ProjectCreateBody, ProjectUpdateBody
from edgefed.services.identity.state import state_for
from edgefed.store.identity import ProjectRecord, Projects


def _own_project(call: Call, id: str | None) -> bool:
    return id is not None and call.principal.project_id == id


def _tags(raw: str | None) -> set[str]:
    return {t for t in (raw or "").split(",") if t}


class Project(KeystoneResource[ProjectRecord, Projects]):
    key = "project"
    collection_key = "projects"
    path = "/v3/projects"
    attributes = ("id", "name", "domain_id", "description", "enabled")
    access = KeystonePolicy(anyone={"get_auth_projects"}, own={"show": _own_project})
    filters = {
        **exact("name", "domain_id"),
        **ENABLED,
        # Not pushed to the store: read by ``records``.
        "parent_id": Filter(description="Only the children of this project (or domain)."),
        "tags": Filter(description="Only projects with all these tags (comma-separated)."),
        "tags-any": Filter(description="Only projects with any of these tags."),
        "is_domain": Filter(description="Projects acting as domains (there are none)."),
    }
    store_class = Projects
    create_body = ProjectCreateBody
    update_body = ProjectUpdateBody
    required = ("name", "enabled", "tags")
    immutable = ("domain_id", "parent_id", "is_domain")

    def view(self, project: ProjectRecord, call: Call) -> dict[str, Any]:
        return {
            **super().view(project, call),
            "parent_id": project.parent_id or project.domain_id,
            "is_domain": False,
            "tags": list(project.tags),
            "options": {},
        }

    async def records(self, call: Call, repo: Projects) -> Sequence[ProjectRecord]:
        q = call.query
        if query_flag(q.get("is_domain")):
            return []
        found = await super().records(call, repo)
        parent = q.get("parent_id")
        if parent is not None:
            found = [p for p in found if (p.parent_id or p.domain_id) == parent]
        wanted = _tags(q.get("tags"))
        if wanted:
            found = [p for p in found if wanted <= set(p.tags)]
        any_tags = _tags(q.get("tags-any"))
        if any_tags:
            found = [p for p in found if any_tags & set(p.tags)]
        return found

    async def create(self, call: Call, repo: Projects) -> ProjectRecord:
        p = call.model(ProjectCreateBody).project
        if p.is_domain:
            raise ValidationFailed(
                "Projects acting as domains are not supported.", field="is_domain"
            )
        domain_id = p.domain_id or DEFAULT_DOMAIN_ID
        parent_id = p.parent_id
        if parent_id is not None and parent_id != domain_id:
            parent = await self.find(call, parent_id, repo)
            if p.domain_id is None:
                domain_id = parent.domain_id
            elif parent.domain_id != domain_id:
                raise ValidationFailed(
                    "The parent project must be in the same domain.", field="parent_id"
                )
        else:
            parent_id = None
        await require_domain(call, domain_id)
        new = ProjectRecord(
            id=predictable_id("project", p.name, domain_id=domain_id),
            name=p.name,
            domain_id=domain_id,
            parent_id=parent_id,
            description=p.description or "",
            enabled=p.enabled,
            tags=tuple(p.tags),
            extra=p.extras(),
        )
        return await repo.create(new=new)

    async def before_delete(self, call: Call, repo: Projects, project: ProjectRecord) -> None:
        if await repo.list(filters={"parent_id": project.id}, limit=1):
            raise Forbidden(f"Cannot delete project {project.id}: it has child projects.")

    async def after_write(
        self, call: Call, verb: str, before: ProjectRecord | None, after: ProjectRecord | None
    ) -> None:
        if verb == "delete" and before is not None:
            await revoke_scope(state_for(call.ctx), project_id=before.id)
        elif verb == "update" and after is not None:
            if disables(call.model(ProjectUpdateBody).project):
                await revoke_scope(state_for(call.ctx), project_id=after.id)


PROJECT = Project()
