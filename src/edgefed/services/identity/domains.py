"""/v3/domains: the default domain and any others (ID = uuid5 of the name).

Disabling a domain revokes the tokens scoped to it. A domain is deleted only once it
is disabled and empty; the default domain is neither renamed, disabled nor deleted.
"""

from __future__ import annotations

from typing import Any

from edgefed.api.resource import Call
from edgefed.core.errors import Forbidden, ValidationFailed
from edgefed.core.ids import DEFAULT_DOMAIN_ID, domain_id_for
from edgefed.services.identity.keystone import (
    ENABLED,
    KeystonePolicy,
    KeystoneResource,
    disables,
    exact,
)
from edgefed.services.identity.revoking import revoke_scope
from edgefed.services.identity.schemas import DomainCreateBody, DomainUpdateBody
from edgefed.services.identity.state import state_for
from edgefed.store.identity import DomainRecord, Domains


class Domain(KeystoneResource[DomainRecord, Domains]):
    key = "domain"
    collection_key = "domains"
    path = "/v3/domains"
    attributes = ("id", "name", "description", "enabled")
    # A domain by ID is readable by anyone authenticated (clients resolve names).
    access = KeystonePolicy(anyone={"show", "get_auth_domains"})
    filters = {**exact("name"), **ENABLED}
    store_class = Domains
    create_body = DomainCreateBody
    update_body = DomainUpdateBody
    required = ("name", "enabled", "tags")

    def view(self, domain: DomainRecord, call: Call) -> dict[str, Any]:
        return {**super().view(domain, call), "tags": list(domain.tags), "options": {}}

    async def create(self, call: Call, repo: Domains) -> DomainRecord:
        d = call.model(DomainCreateBody).domain
        new = DomainRecord(
            id=domain_id_for(d.name),
            name=d.name,
            description=d.description or "",
            enabled=d.enabled,
            tags=tuple(d.tags),
            extra=d.extras(),
        )
        return await repo.create(new=new)

    async def changes(self, call: Call, repo: Domains, domain: DomainRecord) -> dict[str, Any]:
        changes = await super().changes(call, repo, domain)
        if domain.id == DEFAULT_DOMAIN_ID:
            if "name" in changes:
                raise Forbidden("The default domain cannot be renamed.")
            if changes.get("enabled") is False:
                raise Forbidden("The default domain cannot be disabled.")
        return changes

    async def before_delete(self, call: Call, repo: Domains, domain: DomainRecord) -> None:
        if domain.id == DEFAULT_DOMAIN_ID:
            raise Forbidden("The default domain cannot be deleted.")
        if domain.enabled:
            raise Forbidden("Cannot delete a domain that is enabled, please disable it first.")
        repos = state_for(call.ctx).repos
        for what, kind in (("projects", repos.projects), ("users", repos.users),
                           ("groups", repos.groups)):  # fmt: skip
            if await kind.list(filters={"domain_id": domain.id}, limit=1):
                raise Forbidden(f"Cannot delete domain {domain.id}: it still has {what}.")

    async def after_write(
        self, call: Call, verb: str, before: DomainRecord | None, after: DomainRecord | None
    ) -> None:
        if verb == "update" and after is not None and disables(call.model(DomainUpdateBody).domain):
            await revoke_scope(state_for(call.ctx), domain_id=after.id)


DOMAIN = Domain()


async def require_domain(call: Call, domain_id: str) -> str:
    """The domain a new project, user or group is made in, which must exist (400)."""
    if await state_for(call.ctx).repos.domains.get(id=domain_id) is None:
        raise ValidationFailed(f"Could not find domain: {domain_id}.", field="domain_id")
    return domain_id
