"""Request bodies of the identity API, validated as Keystone's JSON schemas do.

Types are strict (``"enabled": "yes"`` is a 400, not True). Projects, users, groups,
roles and domains accept additional properties, as Keystone does (``email`` on a user,
say); they are kept and shown back. An ``id`` in a create body is ignored: IDs are
predictable, derived from the name (seed 001).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, StringConstraints

Name64 = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=64)]
Name255 = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=255)]
Tag = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=255)]
Id = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=64)]

# Keys that are never stored as extra attributes.
RESERVED = frozenset({"id", "links", "options", "password", "original_password"})


class Open(BaseModel):
    """A body that keeps unknown properties (Keystone's ``additionalProperties: true``)."""

    model_config = ConfigDict(extra="allow")

    def extras(self) -> dict[str, Any]:
        return {k: v for k, v in (self.model_extra or {}).items() if k not in RESERVED}

    def given(self) -> dict[str, Any]:
        """Declared fields the client sent (for PATCH)."""
        return {k: getattr(self, k) for k in self.model_fields_set if k in type(self).model_fields}


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def given(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.model_fields_set}


# ---- domains ------------------------------------------------------------------------


class DomainCreate(Open):
    name: Name64
    description: StrictStr | None = None
    enabled: StrictBool = True
    tags: list[Tag] = Field(default_factory=list)


class DomainUpdate(Open):
    name: Name64 | None = None
    description: StrictStr | None = None
    enabled: StrictBool | None = None
    tags: list[Tag] | None = None


class DomainCreateBody(_Closed):
    domain: DomainCreate


class DomainUpdateBody(_Closed):
    domain: DomainUpdate


# ---- projects -----------------------------------------------------------------------


class ProjectCreate(Open):
    name: Name64
    domain_id: Id | None = None
    parent_id: Id | None = None
    description: StrictStr | None = None
    enabled: StrictBool = True
    is_domain: StrictBool = False
    tags: list[Tag] = Field(default_factory=list)


class ProjectUpdate(Open):
    name: Name64 | None = None
    description: StrictStr | None = None
    enabled: StrictBool | None = None
    tags: list[Tag] | None = None


class ProjectCreateBody(_Closed):
    project: ProjectCreate


class ProjectUpdateBody(_Closed):
    project: ProjectUpdate


# ---- users --------------------------------------------------------------------------


class UserCreate(Open):
    name: Name255
    domain_id: Id | None = None
    default_project_id: Id | None = None
    enabled: StrictBool = True
    password: StrictStr | None = None


class UserUpdate(Open):
    name: Name255 | None = None
    default_project_id: Id | None = None
    enabled: StrictBool | None = None
    password: StrictStr | None = None


class UserCreateBody(_Closed):
    user: UserCreate


class UserUpdateBody(_Closed):
    user: UserUpdate


class PasswordChange(_Closed):
    password: Annotated[str, StringConstraints(strict=True, min_length=1)]
    original_password: StrictStr


class PasswordChangeBody(_Closed):
    user: PasswordChange


# ---- groups -------------------------------------------------------------------------


class GroupCreate(Open):
    name: Name64
    domain_id: Id | None = None
    description: StrictStr | None = None


class GroupUpdate(Open):
    name: Name64 | None = None
    description: StrictStr | None = None


class GroupCreateBody(_Closed):
    group: GroupCreate


class GroupUpdateBody(_Closed):
    group: GroupUpdate


# ---- roles --------------------------------------------------------------------------


class RoleCreate(Open):
    name: Name255
    domain_id: Id | None = None
    description: StrictStr | None = None


class RoleUpdate(Open):
    name: Name255 | None = None
    description: StrictStr | None = None


class RoleCreateBody(_Closed):
    role: RoleCreate


class RoleUpdateBody(_Closed):
    role: RoleUpdate


# ---- regions, services, endpoints -----------------------------------------------------


class RegionCreate(Open):
    id: Name255 | None = None
    description: StrictStr | None = None
    parent_region_id: Name255 | None = None


class RegionUpdate(Open):
    description: StrictStr | None = None
    parent_region_id: Name255 | None = None


class RegionCreateBody(_Closed):
    region: RegionCreate


class RegionUpdateBody(_Closed):
    region: RegionUpdate


class ServiceCreate(Open):
    type: Name255
    name: StrictStr | None = None
    description: StrictStr | None = None
    enabled: StrictBool = True


class ServiceUpdate(Open):
    type: Name255 | None = None
    name: StrictStr | None = None
    description: StrictStr | None = None
    enabled: StrictBool | None = None


class ServiceCreateBody(_Closed):
    service: ServiceCreate


class ServiceUpdateBody(_Closed):
    service: ServiceUpdate


Interface = Annotated[str, StringConstraints(strict=True, pattern="^(public|internal|admin)$")]
Url = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=2048)]


class EndpointCreate(Open):
    service_id: Id
    interface: Interface
    url: Url
    region_id: Name255 | None = None
    region: Name255 | None = None
    enabled: StrictBool = True


class EndpointUpdate(Open):
    service_id: Id | None = None
    interface: Interface | None = None
    url: Url | None = None
    region_id: Name255 | None = None
    region: Name255 | None = None
    enabled: StrictBool | None = None


class EndpointCreateBody(_Closed):
    endpoint: EndpointCreate


class EndpointUpdateBody(_Closed):
    endpoint: EndpointUpdate


# ---- application credentials ----------------------------------------------------------


class RoleRef(_Closed):
    id: Id | None = None
    name: Name255 | None = None
    domain_id: Id | None = None


class AppCredentialCreate(_Closed):
    name: Name255
    description: StrictStr | None = None
    secret: Annotated[str, StringConstraints(strict=True, min_length=1)] | None = None
    expires_at: StrictStr | None = None
    roles: list[RoleRef] | None = None
    unrestricted: StrictBool = False
    access_rules: list[dict[str, Any]] | None = None


class AppCredentialCreateBody(_Closed):
    application_credential: AppCredentialCreate
