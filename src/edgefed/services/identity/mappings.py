"""/v3/OS-EDGE/mappings: what users of other fleet sites may do here (docs/fleet-trust.md).

A rule says: users of domain ``user_domain`` (or only the user ``user``) whose tokens
``site`` issued ("*": any fleet site) get ``role`` on a project, a domain or the system
of this site. Names resolve to the predictable ids (a rule may name a project that does
not exist yet). Rules from the config file (``[[mapping]]``) are re-applied at each
start; rules made through the API stay until deleted. Admin only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field, model_validator

from edgefed.api.context import SiteContext
from edgefed.api.resource import Call
from edgefed.core.errors import ValidationFailed
from edgefed.core.ids import domain_id_for, is_uuid, new_hex_id, predictable_id
from edgefed.core.settings import MappingSpec
from edgefed.services.identity.grants import role_graph
from edgefed.services.identity.keystone import KeystoneResource
from edgefed.services.identity.state import state_for
from edgefed.store.identity.mappings import MappingRules
from edgefed.store.mappings import MappingRule

NAME = r"^[^\x00-\x1f]{1,255}$"


class MappingCreate(BaseModel):
    model_config = {"extra": "forbid"}
    site: str = Field(min_length=1, max_length=64, pattern=r"^(\*|[A-Za-z][A-Za-z0-9_.-]{0,62})$")
    user_domain: str = Field(default="Default", min_length=1, max_length=64, pattern=NAME)
    user: str = Field(default="*", min_length=1, max_length=255, pattern=NAME)
    role: str = Field(min_length=1, max_length=255, pattern=NAME)
    project: str | None = Field(default=None, min_length=1, max_length=64, pattern=NAME)
    domain: str | None = Field(default=None, min_length=1, max_length=64, pattern=NAME)
    system: bool = False

    @model_validator(mode="after")
    def one_target(self) -> MappingCreate:
        given = [t for t in (self.project, self.domain) if t is not None] + (
            ["system"] if self.system else []
        )
        if len(given) != 1:
            raise ValueError("a mapping names exactly one of project, domain or system")
        return self


class MappingBody(BaseModel):
    model_config = {"extra": "forbid"}
    mapping: MappingCreate


def _id(kind: str, ref: str) -> str:
    """A name or an id: 32 hex digits are taken as an id, anything else as a name."""
    if len(ref) == 32 and is_uuid(ref):
        return ref
    if kind == "domain":
        return domain_id_for(ref)
    return predictable_id(kind, ref, domain_id="" if kind == "role" else "default")


def rule_from(spec: MappingSpec | MappingCreate, *, source: str, now: float) -> MappingRule:
    if spec.project is not None:
        target = ("project", _id("project", spec.project))
    elif spec.domain is not None:
        target = ("domain", _id("domain", spec.domain))
    elif spec.system:
        target = ("system", "all")
    else:
        raise ValidationFailed("a mapping names a project, a domain or the system")
    return MappingRule(
        id=new_hex_id(),
        site=spec.site,
        user_domain=spec.user_domain,
        user_name=spec.user,
        role_id=_id("role", spec.role),
        target_type=target[0],
        target_id=target[1],
        source=source,
        created_at=now,
    )


class Mapping(KeystoneResource[MappingRule, MappingRules]):
    key = "mapping"
    collection_key = "mappings"
    path = "/v3/OS-EDGE/mappings"
    verbs = frozenset({"list", "create", "delete"})
    create_body = MappingBody

    def repository(self, call: Call) -> MappingRules:
        return MappingRules(call.ctx.store)

    def view(self, rule: MappingRule, call: Call) -> dict[str, Any]:
        graph = state_for(call.ctx).role_graph
        names: dict[str, str] = graph.names if graph is not None else {}
        out: dict[str, Any] = {
            "id": rule.id,
            "site": rule.site,
            "user_domain": rule.user_domain,
            "user": rule.user_name,
            "role": {"id": rule.role_id, "name": names.get(rule.role_id)},
            "source": rule.source,
        }
        if rule.target_type == "system":
            out["system"] = {"all": True}
        else:
            out[rule.target_type] = {"id": rule.target_id}
        return out

    async def records(self, call: Call, repo: MappingRules) -> Sequence[MappingRule]:
        await role_graph(state_for(call.ctx))  # the roles' names, for the views
        return await repo.list()

    async def create(self, call: Call, repo: MappingRules) -> MappingRule:
        rule = rule_from(call.model(MappingBody).mapping, source="api", now=call.ctx.clock())
        await role_graph(state_for(call.ctx))  # the role's name, for the view
        return await repo.create(new=rule)


MAPPING = Mapping()


async def install_config_mappings(ctx: SiteContext) -> None:
    """Make the config file's rules the ``config`` rules of this site."""
    rules = [rule_from(spec, source="config", now=ctx.clock()) for spec in ctx.settings.mapping]
    await MappingRules(ctx.store).replace_source("config", rules)
