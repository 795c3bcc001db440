"""The compute service's tables: flavors and their access lists, key pairs, quotas,
servers and their instance actions.

Flavors, flavor access, key pairs and project quotas are synchronisable (store/sync
kinds): rows that arrived from a sync source carry its name in ``origin``, which the
repositories read to refuse local changes. Servers are always this site's own.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from edgefed.store.schema import JsonDoc, UtcDateTime, metadata

flavors = Table(
    "compute_flavors",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("vcpus", Integer, nullable=False),
    Column("ram", Integer, nullable=False),
    Column("disk", Integer, nullable=False),
    Column("ephemeral", Integer, nullable=False, default=0),
    Column("swap", Integer, nullable=False, default=0),
    Column("rxtx_factor", Float, nullable=False, default=1.0),
    Column("is_public", Boolean, nullable=False, default=True),
    Column("description", Text, nullable=True),
    Column("extra_specs", JsonDoc, nullable=False, default=dict),
    Column("origin", String(64), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
)

flavor_access = Table(
    "compute_flavor_access",
    metadata,
    Column("flavor_id", String(255), primary_key=True),
    Column("project_id", String(64), primary_key=True),
)

keypairs = Table(
    "compute_keypairs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", String(64), nullable=False),
    Column("name", String(255), nullable=False),
    Column("type", String(16), nullable=False),
    Column("public_key", Text, nullable=False),
    Column("fingerprint", String(128), nullable=False),
    Column("origin", String(64), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("user_id", "name", name="uq_compute_keypairs_user_name"),
)

# kind = "project" (owner = project id) or "class" (owner = quota class name).
quotas = Table(
    "compute_quotas",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("owner", String(64), primary_key=True),
    Column("resource", String(64), primary_key=True),
    Column("hard_limit", Integer, nullable=False),
    Column("origin", String(64), nullable=True),
)

servers = Table(
    "compute_servers",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("project_id", String(64), nullable=False, index=True),
    Column("user_id", String(64), nullable=False),
    Column("image_id", String(64), nullable=True),
    Column("flavor_id", String(255), nullable=False),
    Column("flavor", JsonDoc, nullable=False),
    Column("vcpus", Integer, nullable=False),
    Column("ram", Integer, nullable=False),
    Column("disk", Integer, nullable=False),
    Column("host", String(255), nullable=True, index=True),
    Column("availability_zone", String(255), nullable=True),
    Column("vm_state", String(32), nullable=False),
    Column("task_state", String(32), nullable=True),
    Column("power_state", Integer, nullable=False, default=0),
    Column("key_name", String(255), nullable=True),
    Column("key_data", Text, nullable=True),
    Column("metadata", JsonDoc, nullable=False, default=dict),
    Column("user_data", Text, nullable=True),
    Column("description", Text, nullable=True),
    Column("locked", Boolean, nullable=False, default=False),
    Column("locked_reason", Text, nullable=True),
    Column("tags", JsonDoc, nullable=False, default=list),
    Column("security_groups", JsonDoc, nullable=False, default=list),
    Column("requested_networks", JsonDoc, nullable=True),
    Column("config_drive", String(16), nullable=False, default=""),
    Column("fault", JsonDoc, nullable=True),
    # Its volumes (block device mappings of destination "volume"): store/compute/volumes.py
    Column("volumes", JsonDoc, nullable=False, default=list),
    # The image the root disk is made from when it is not ``image_id`` (a disk that was
    # shelved, resized or migrated is a snapshot image); kernel and ramdisk stay
    # ``image_id``'s.
    Column("root_image_id", String(64), nullable=True),
    # A resize or migration awaiting its confirm or revert: the flavor, host and root
    # image before it (services/compute/moves.py).
    Column("migration", JsonDoc, nullable=True),
    Column("reservation_id", String(64), nullable=False),
    Column("launch_index", Integer, nullable=False, default=0),
    Column("hostname", String(255), nullable=False),
    Column("launched_at", UtcDateTime, nullable=True),
    Column("terminated_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("deleted", Boolean, nullable=False, default=False, index=True),
)

instance_actions = Table(
    "compute_instance_actions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("server_id", String(36), nullable=False, index=True),
    Column("action", String(64), nullable=False),
    Column("request_id", String(64), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("project_id", String(64), nullable=False),
    Column("message", Text, nullable=True),
    Column("start_time", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=True),
)


# A server that is not soft-deleted.
LIVE = servers.c.deleted.is_(False)

# Attachments of other sites' volumes this site released while their site could not be
# reached: released again until the site answers (store/compute/releases.py).
remote_releases = Table(
    "compute_remote_releases",
    metadata,
    Column("attachment_id", String(64), primary_key=True),
    Column("site", String(255), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
)

# Servers moving between sites (store/compute/relocations.py): ``out`` at the source,
# which drives the move; ``in`` at the destination, which received the grant it gave,
# the disk's bytes so far and the server it will create once the disk is whole.
relocations = Table(
    "compute_relocations",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("direction", String(3), nullable=False),
    Column("server_id", String(64), nullable=False, index=True),
    Column("project_id", String(64), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("peer_site", String(255), nullable=False),
    Column("peer_id", String(64), nullable=True),
    Column("mode", String(16), nullable=False),
    Column("phase", String(32), nullable=False),
    Column("error", Text, nullable=True),
    # out: the grant the destination gave; in: its sha256 (the grant itself is not kept)
    Column("grant", String(128), nullable=True),
    Column("disk_format", String(16), nullable=True),
    Column("disk_size", BigInteger, nullable=True),
    Column("disk_sha256", String(64), nullable=True),
    Column("done_bytes", BigInteger, nullable=False, default=0),
    Column("was_running", Boolean, nullable=False, default=False),
    Column("image_id", String(64), nullable=True),
    Column("details", JsonDoc, nullable=False, default=dict),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# A drain of this site (store/compute/drains.py): where its guests go, and how far.
drains = Table(
    "compute_drains",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("targets", String(1024), nullable=False),
    Column("state", String(16), nullable=False),
    Column("details", JsonDoc, nullable=False, default=dict),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)
