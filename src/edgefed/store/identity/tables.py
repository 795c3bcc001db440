"""The identity service's tables (Keystone's data model, kept small).

``origin`` names the sync source a row was received from (None = local); the service
refuses local writes to such rows. Password hashes are stored as argon2id PHC strings
(``$argon2id$v=19$m=…``), self-describing, so they can be copied verbatim to another
site. The sync store (``store.sync.kinds``) carries users, projects, groups, roles,
memberships and assignments by these tables; everything else reads and writes them
through the repositories of this package.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from edgefed.store.schema import JsonDoc, metadata

ID = String(64)

domains = Table(
    "identity_domains",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("description", Text, nullable=False, default=""),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("tags", JsonDoc, nullable=False, default=list),
    Column("extra", JsonDoc, nullable=False, default=dict),
    Column("origin", String(64), nullable=True),
)

projects = Table(
    "identity_projects",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(64), nullable=False),
    Column("domain_id", ID, ForeignKey("identity_domains.id"), nullable=False),
    Column("parent_id", ID, nullable=True),
    Column("description", Text, nullable=False, default=""),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("tags", JsonDoc, nullable=False, default=list),
    Column("extra", JsonDoc, nullable=False, default=dict),
    Column("origin", String(64), nullable=True),
    UniqueConstraint("domain_id", "name", name="uq_identity_projects_domain_name"),
)

users = Table(
    "identity_users",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(255), nullable=False),
    Column("domain_id", ID, ForeignKey("identity_domains.id"), nullable=False),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("password_hash", Text, nullable=True),
    Column("password_set_at", Float, nullable=True),
    Column("default_project_id", ID, nullable=True),
    Column("extra", JsonDoc, nullable=False, default=dict),
    Column("origin", String(64), nullable=True),
    UniqueConstraint("domain_id", "name", name="uq_identity_users_domain_name"),
)

groups = Table(
    "identity_groups",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(64), nullable=False),
    Column("domain_id", ID, ForeignKey("identity_domains.id"), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("extra", JsonDoc, nullable=False, default=dict),
    Column("origin", String(64), nullable=True),
    UniqueConstraint("domain_id", "name", name="uq_identity_groups_domain_name"),
)

group_members = Table(
    "identity_group_members",
    metadata,
    Column("group_id", ID, ForeignKey("identity_groups.id", ondelete="CASCADE")),
    Column("user_id", ID, ForeignKey("identity_users.id", ondelete="CASCADE")),
    PrimaryKeyConstraint("group_id", "user_id", name="pk_identity_group_members"),
)

roles = Table(
    "identity_roles",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("domain_id", ID, nullable=True),
    Column("description", Text, nullable=False, default=""),
    Column("extra", JsonDoc, nullable=False, default=dict),
    Column("origin", String(64), nullable=True),
)

role_implications = Table(
    "identity_role_implications",
    metadata,
    Column("prior_role_id", ID, ForeignKey("identity_roles.id", ondelete="CASCADE")),
    Column("implied_role_id", ID, ForeignKey("identity_roles.id", ondelete="CASCADE")),
    PrimaryKeyConstraint("prior_role_id", "implied_role_id", name="pk_identity_role_implications"),
)

# actor_type: user | group; target_type: project | domain | system (target_id "all").
assignments = Table(
    "identity_assignments",
    metadata,
    Column("actor_type", String(8), nullable=False),
    Column("actor_id", ID, nullable=False),
    Column("target_type", String(8), nullable=False),
    Column("target_id", ID, nullable=False),
    Column("role_id", ID, ForeignKey("identity_roles.id", ondelete="CASCADE"), nullable=False),
    Column("origin", String(64), nullable=True),
    PrimaryKeyConstraint(
        "actor_type", "actor_id", "target_type", "target_id", "role_id",
        name="pk_identity_assignments",
    ),
)  # fmt: skip

regions = Table(
    "identity_regions",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("description", Text, nullable=False, default=""),
    Column("parent_region_id", String(255), nullable=True),
    Column("extra", JsonDoc, nullable=False, default=dict),
)

services = Table(
    "identity_services",
    metadata,
    Column("id", ID, primary_key=True),
    Column("type", String(255), nullable=False),
    Column("name", String(255), nullable=False, default=""),
    Column("description", Text, nullable=False, default=""),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("extra", JsonDoc, nullable=False, default=dict),
)

endpoints = Table(
    "identity_endpoints",
    metadata,
    Column("id", ID, primary_key=True),
    Column("service_id", ID, nullable=False),
    Column("region_id", String(255), nullable=True),
    Column("interface", String(8), nullable=False),
    Column("url", Text, nullable=False),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("extra", JsonDoc, nullable=False, default=dict),
)

app_credentials = Table(
    "identity_app_credentials",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(255), nullable=False),
    Column("user_id", ID, ForeignKey("identity_users.id", ondelete="CASCADE"), nullable=False),
    Column("project_id", ID, nullable=False),
    Column("secret_hash", Text, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("role_ids", JsonDoc, nullable=False, default=list),
    Column("unrestricted", Boolean, nullable=False, default=False),
    Column("expires_at", Float, nullable=True),
    Column("access_rules", JsonDoc, nullable=False, default=list),
    UniqueConstraint("user_id", "name", name="uq_identity_app_credentials_user_name"),
)
