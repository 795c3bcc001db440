"""/v3/projects: CRUD with Keystone's filters (name, domain_id, enabled, parent_id, tags)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from edgefed.api.auth import Principal, current_principal
from edgefed.api.responses import Json
from edgefed.core.errors import Forbidden, NotFound, ValidationFailed
from edgefed.core.ids import DEFAULT_DOMAIN_ID, predictable_id
from edgefed.services.identity.common import must_get, query_flag, refuse_immutable
from edgefed.services.identity.guard import authorize, ensure_local
from edgefed.services.identity.revoking import revoke
from edgefed.services.identity.schemas import ProjectCreateBody, ProjectUpdateBody
from edgefed.services.identity.state import IdentityState, identity_state
from edgefed.services.identity.views import collection, project_view
from edgefed.store.identity import domains, projects
from edgefed.store.revocations import RevocationEvent

router = APIRouter()


@router.post("/v3/projects", status_code=201)
async def create_project(
    body: ProjectCreateBody,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    authorize(principal, "create_project")
    p = body.project
    if p.is_domain:
        raise ValidationFailed("Projects acting as domains are not supported.", field="is_domain")
    domain_id = p.domain_id or DEFAULT_DOMAIN_ID
    parent_id = p.parent_id
    if parent_id is not None and parent_id != domain_id:
        parent = await state.repo.get(projects, parent_id)
        if parent is None:
            raise NotFound(f"Could not find project: {parent_id}.")
        if p.domain_id is None:
            domain_id = parent["domain_id"]
        elif parent["domain_id"] != domain_id:
            raise ValidationFailed(
                "The parent project must be in the same domain.", field="parent_id"
            )
    else:
        parent_id = None
    if await state.repo.get(domains, domain_id) is None:
        raise ValidationFailed(f"Could not find domain: {domain_id}.", field="domain_id")
    row = await state.repo.create(
        projects,
        {
            "id": predictable_id("project", p.name, domain_id=domain_id),
            "name": p.name,
            "domain_id": domain_id,
            "parent_id": parent_id,
            "description": p.description or "",
            "enabled": p.enabled,
            "tags": p.tags,
            "extra": p.extras(),
        },
        what="project",
    )
    return Json({"project": project_view(state, row)}, status_code=201)


@router.get("/v3/projects")
async def list_projects(
    request: Request,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    authorize(principal, "list_projects")
    q = request.query_params
    if query_flag(q.get("is_domain")):
        return Json(collection(state, "projects", [], path="/projects"))
    rows = await state.repo.list_rows(
        projects,
        filters={
            "name": q.get("name"),
            "domain_id": q.get("domain_id"),
            "enabled": query_flag(q.get("enabled")),
        },
    )
    parent = q.get("parent_id")
    if parent is not None:
        rows = [r for r in rows if (r["parent_id"] or r["domain_id"]) == parent]
    wanted = _tags(q.get("tags"))
    if wanted:
        rows = [r for r in rows if wanted <= set(r["tags"])]
    any_tags = _tags(q.get("tags-any"))
    if any_tags:
        rows = [r for r in rows if any_tags & set(r["tags"])]
    return Json(
        collection(state, "projects", (project_view(state, r) for r in rows), path="/projects")
    )


def _tags(raw: str | None) -> set[str]:
    return {t for t in (raw or "").split(",") if t}


@router.get("/v3/projects/{project_id}")
async def get_project(
    project_id: str,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    if principal.project_id != project_id:
        authorize(principal, "get_project")
    row = await must_get(state, projects, project_id, "project")
    return Json({"project": project_view(state, row)})


@router.patch("/v3/projects/{project_id}")
async def update_project(
    project_id: str,
    body: ProjectUpdateBody,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    authorize(principal, "update_project")
    row = await must_get(state, projects, project_id, "project")
    ensure_local(row, "Project")
    refuse_immutable(body.project.extras(), "domain_id", "parent_id", "is_domain")
    changes = body.project.given()
    for key in ("name", "enabled", "tags"):
        if key in changes and changes[key] is None:
            raise ValidationFailed(f"Invalid input for field '{key}': None", field=key)
    if "description" in changes and changes["description"] is None:
        changes["description"] = ""
    if body.project.extras():
        changes["extra"] = {**row["extra"], **body.project.extras()}
    updated = (
        await state.repo.update(projects, project_id, changes, what="project") if changes else row
    )
    assert updated is not None
    if changes.get("enabled") is False:
        await revoke(state, RevocationEvent(issued_before=state.ctx.clock(), project_id=project_id))
    return Json({"project": project_view(state, updated)})


@router.delete("/v3/projects/{project_id}", status_code=204)
async def delete_project(
    project_id: str,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Response:
    authorize(principal, "delete_project")
    row = await must_get(state, projects, project_id, "project")
    ensure_local(row, "Project")
    if await state.repo.list_rows(projects, filters={"parent_id": project_id}):
        raise Forbidden(f"Cannot delete project {project_id}: it has child projects.")
    await state.repo.delete(projects, project_id)
    await revoke(state, RevocationEvent(issued_before=state.ctx.clock(), project_id=project_id))
    return Response(status_code=204)
