"""The identity service's records: one frozen dataclass per kind, as the repositories
of this package take and return them (``tags`` a tuple, ``extra`` a dict of the
attributes Keystone keeps beyond its own, ``origin`` the sync source of a received row).

A record is also what a create stores: identity ids are predictable (derived from the
name, seed 001), so the service makes the whole record, id included.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class DomainRecord:
    id: str
    name: str
    description: str = ""
    enabled: bool = True
    tags: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    origin: str | None = None


@dataclass(frozen=True, slots=True)
class ProjectRecord:
    id: str
    name: str
    domain_id: str
    parent_id: str | None = None
    description: str = ""
    enabled: bool = True
    tags: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    origin: str | None = None


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: str
    name: str
    domain_id: str
    enabled: bool = True
    # An argon2id PHC string; None for a user that cannot log in with a password.
    password_hash: str | None = None
    password_set_at: float | None = None
    default_project_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    origin: str | None = None


@dataclass(frozen=True, slots=True)
class GroupRecord:
    id: str
    name: str
    domain_id: str
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    origin: str | None = None


@dataclass(frozen=True, slots=True)
class RoleRecord:
    id: str
    name: str
    domain_id: str | None = None
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    origin: str | None = None


@dataclass(frozen=True, slots=True)
class AssignmentRecord:
    """``role_id`` for a user or a group (``actor_type``) on a project, a domain or the
    system (``target_type``; the system's ``target_id`` is ``all``)."""

    actor_type: str
    actor_id: str
    target_type: str
    target_id: str
    role_id: str
    origin: str | None = None


@dataclass(frozen=True, slots=True)
class RegionRecord:
    id: str
    description: str = ""
    parent_region_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    id: str
    type: str
    name: str = ""
    description: str = ""
    enabled: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EndpointRecord:
    id: str
    service_id: str
    interface: str
    url: str
    region_id: str | None = None
    enabled: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AppCredentialRecord:
    id: str
    name: str
    user_id: str
    project_id: str
    # The secret's argon2id hash: the secret itself is shown once, at creation.
    secret_hash: str
    description: str = ""
    role_ids: tuple[str, ...] = ()
    unrestricted: bool = False
    expires_at: float | None = None
    access_rules: tuple[dict[str, Any], ...] = ()
