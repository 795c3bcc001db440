"""/v3/domains: the default domain and any others (ID = uuid5 of the name)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from edgefed.api.auth import Principal, current_principal
from edgefed.api.responses import Json
from edgefed.core.errors import Forbidden
from edgefed.core.ids import DEFAULT_DOMAIN_ID, domain_id_for
from edgefed.services.identity.common import must_get, query_flag
from edgefed.services.identity.guard import authorize, ensure_local
from edgefed.services.identity.revoking import revoke
from edgefed.services.identity.schemas import DomainCreateBody, DomainUpdateBody
from edgefed.services.identity.state import IdentityState, identity_state
from edgefed.services.identity.views import collection, domain_view
from edgefed.store.identity import domains, groups, projects, users
from edgefed.store.revocations import RevocationEvent

router = APIRouter()


@router.post("/v3/domains", status_code=201)
async def create_domain(
    body: DomainCreateBody,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    authorize(principal, "create_domain")
    d = body.domain
    row = await state.repo.create(
        domains,
        {
            "id": domain_id_for(d.name),
            "name": d.name,
            "description": d.description or "",
            "enabled": d.enabled,
            "tags": d.tags,
            "extra": d.extras(),
        },
        what="domain",
    )
    return Json({"domain": domain_view(state, row)}, status_code=201)


@router.get("/v3/domains")
async def list_domains(
    request: Request,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    authorize(principal, "list_domains")
    q = request.query_params
    rows = await state.repo.list_rows(
        domains, filters={"name": q.get("name"), "enabled": query_flag(q.get("enabled"))}
    )
    return Json(
        collection(state, "domains", (domain_view(state, r) for r in rows), path="/domains")
    )


@router.get("/v3/domains/{domain_id}")
async def get_domain(
    domain_id: str,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    row = await must_get(state, domains, domain_id, "domain")
    return Json({"domain": domain_view(state, row)})


@router.patch("/v3/domains/{domain_id}")
async def update_domain(
    domain_id: str,
    body: DomainUpdateBody,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    authorize(principal, "update_domain")
    row = await must_get(state, domains, domain_id, "domain")
    ensure_local(row, "Domain")
    changes = body.domain.given()
    if changes.get("name") is not None and domain_id == DEFAULT_DOMAIN_ID:
        raise Forbidden("The default domain cannot be renamed.")
    if body.domain.extras():
        changes["extra"] = {**row["extra"], **body.domain.extras()}
    if changes.get("enabled") is False and domain_id == DEFAULT_DOMAIN_ID:
        raise Forbidden("The default domain cannot be disabled.")
    updated = await state.repo.update(domains, domain_id, changes, what="domain")
    assert updated is not None
    if changes.get("enabled") is False:
        await revoke(state, RevocationEvent(issued_before=state.ctx.clock(), domain_id=domain_id))
    return Json({"domain": domain_view(state, updated)})


@router.delete("/v3/domains/{domain_id}", status_code=204)
async def delete_domain(
    domain_id: str,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Response:
    authorize(principal, "delete_domain")
    row = await must_get(state, domains, domain_id, "domain")
    ensure_local(row, "Domain")
    if domain_id == DEFAULT_DOMAIN_ID:
        raise Forbidden("The default domain cannot be deleted.")
    if row["enabled"]:
        raise Forbidden("Cannot delete a domain that is enabled, please disable it first.")
    for table, what in ((projects, "projects"), (users, "users"), (groups, "groups")):
        if await state.repo.list_rows(table, filters={"domain_id": domain_id}):
            raise Forbidden(f"Cannot delete domain {domain_id}: it still has {what}.")
    await state.repo.delete(domains, domain_id)
    return Response(status_code=204)
