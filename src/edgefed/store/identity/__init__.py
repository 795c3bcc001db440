"""The identity service's store: tables, records and one repository per kind.

The identity API and its token paths read and write through ``IdentityStore`` (every
repository of one store, built once); they see records (``ProjectRecord``…), never
rows or tables. Every write bumps the store's identity *generation*
(``identity_generation``), which the in-memory caches of the token paths compare:
the repositories bump it after each write, and so must whatever else writes identity
rows (the sync receiver: ``mark_identity_changed``).

The tables are exported for the sync store, which carries identity rows by table.
"""

from __future__ import annotations

from edgefed.store.engine import Store
from edgefed.store.identity.base import IdentityRecords, duplicate_message
from edgefed.store.identity.catalog import AppCredentials, Endpoints, Regions, Services
from edgefed.store.identity.directory import Domains, GroupMembers, Groups, Projects, Users
from edgefed.store.identity.generation import identity_generation, mark_identity_changed
from edgefed.store.identity.records import (
    AppCredentialRecord,
    AssignmentRecord,
    DomainRecord,
    EndpointRecord,
    GroupRecord,
    ProjectRecord,
    RegionRecord,
    RoleRecord,
    ServiceRecord,
    UserRecord,
)
from edgefed.store.identity.roles import Assignments, RoleImplications, Roles
from edgefed.store.identity.tables import (
    app_credentials,
    assignments,
    domains,
    endpoints,
    group_members,
    groups,
    projects,
    regions,
    role_implications,
    roles,
    services,
    users,
)

__all__ = [
    "AppCredentialRecord",
    "AppCredentials",
    "AssignmentRecord",
    "Assignments",
    "DomainRecord",
    "Domains",
    "EndpointRecord",
    "Endpoints",
    "GroupMembers",
    "GroupRecord",
    "Groups",
    "IdentityRecords",
    "IdentityStore",
    "ProjectRecord",
    "Projects",
    "RegionRecord",
    "Regions",
    "RoleImplications",
    "RoleRecord",
    "Roles",
    "ServiceRecord",
    "Services",
    "UserRecord",
    "Users",
    "app_credentials",
    "assignments",
    "domains",
    "duplicate_message",
    "endpoints",
    "group_members",
    "groups",
    "identity_generation",
    "mark_identity_changed",
    "projects",
    "regions",
    "role_implications",
    "roles",
    "services",
    "users",
]


class IdentityStore:
    """Every identity repository of one store (repositories keep no state of their
    own: the identity service builds this once per site and shares it)."""

    def __init__(self, store: Store):
        self.store = store
        self.domains = Domains(store)
        self.projects = Projects(store)
        self.users = Users(store)
        self.groups = Groups(store)
        self.members = GroupMembers(store)
        self.roles = Roles(store)
        self.implications = RoleImplications(store)
        self.assignments = Assignments(store)
        self.regions = Regions(store)
        self.services = Services(store)
        self.endpoints = Endpoints(store)
        self.credentials = AppCredentials(store)
