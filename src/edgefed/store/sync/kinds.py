"""What can be synchronised: kinds of resources, their keys, owners and delivery order.

A *kind* names one table of another service (projects, users, role assignments,
flavors, volume types, quotas, images, ...) with the columns that identify a row on every site (its
*key*: the primary key, except keypairs whose local integer id differs per site), the
kinds it depends on (a role assignment needs its user and project first) and the
delivery *rank* that puts parents before children. Everything else in this package
(triggers, codec, router, receiver) is driven by this table of kinds, so adding a kind
is one entry here and the owner's table.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table

from edgefed.store import identity, image
from edgefed.store.compute import tables as compute
from edgefed.store.volume import tables as volume

KEY_SEPARATOR = "|"
Ref = tuple[str, str]  # (kind, key)
MAX_KEY_LENGTH = 512
MAX_VERSION = 2**63 - 1
SHA256_RE = re.compile(r"[0-9a-f]{64}")


def valid_sha256(value: object) -> bool:
    """Exactly 64 lowercase hex digits: the only blob name that may become a path.

    A sha256 that arrives from another site (a pushed image row, a fetch record, a blob
    path) names a file under ``images/``; anything else (``../keys/signing.pem``) would
    let a source make this site read or serve a file of its data directory."""
    return isinstance(value, str) and SHA256_RE.fullmatch(value) is not None


@dataclass(frozen=True)
class Kind:
    name: str
    table: Table
    key_columns: tuple[str, ...]
    rank: int
    # Parents whose marks decide where a child goes: key values -> [(kind, key)].
    owners: Callable[[Mapping[str, str]], list[Ref]] = field(default=lambda _k: [])
    # What must exist at the receiver before the row is accepted: [(kind, key, what)].
    requires: Callable[[Mapping[str, Any]], list[tuple[str, str, str]]] = field(
        default=lambda _r: []
    )
    # Columns that are per site and never travel (a local autoincrement id).
    local_columns: tuple[str, ...] = ()
    # Whether a row of this key may travel at all: a source grants roles on its own
    # projects and sets quotas of its own projects, never on the receiver's domains,
    # system or quota classes (those are the receiver's own authority).
    travels: Callable[[Mapping[str, str]], bool] = field(default=lambda _k: True)

    def key_of(self, values: Mapping[str, Any]) -> str:
        return KEY_SEPARATOR.join(str(values[c]) for c in self.key_columns)

    def key_values(self, key: str) -> dict[str, str]:
        parts = key.split(KEY_SEPARATOR)
        if len(parts) != len(self.key_columns):
            raise ValueError(
                f"a {self.name} key has {len(self.key_columns)} parts "
                f"({KEY_SEPARATOR.join(self.key_columns)}), got {key!r}"
            )
        return dict(zip(self.key_columns, parts, strict=True))

    @property
    def has_origin(self) -> bool:
        return "origin" in self.table.c


def _assignment_owners(k: Mapping[str, str]) -> list[Ref]:
    refs: list[Ref] = []
    if k["actor_type"] in ("user", "group"):
        refs.append((k["actor_type"], k["actor_id"]))
    if k["target_type"] == "project":
        refs.append(("project", k["target_id"]))
    return refs


def _assignment_requires(r: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    need = [("role", str(r["role_id"]), "role")]
    if r["actor_type"] in ("user", "group"):
        need.append((str(r["actor_type"]), str(r["actor_id"]), str(r["actor_type"])))
    if r["target_type"] == "project":
        need.append(("project", str(r["target_id"]), "project"))
    return need


def _assignment_travels(k: Mapping[str, str]) -> bool:
    return k["actor_type"] in ("user", "group") and k["target_type"] == "project"


def _quota_owners(k: Mapping[str, str]) -> list[Ref]:
    return [("project", k["owner"])] if k["kind"] == "project" else []


def _quota_requires(r: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    return [("project", str(r["owner"]), "project")] if r["kind"] == "project" else []


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("project", identity.projects, ("id",), 0),
        Kind("role", identity.roles, ("id",), 0),
        Kind("flavor", compute.flavors, ("id",), 0),
        Kind("volume_type", volume.volume_types, ("id",), 0),
        Kind("image", image.images, ("id",), 0),
        Kind("user", identity.users, ("id",), 1),
        Kind("group", identity.groups, ("id",), 1),
        Kind(
            "flavor_access",
            compute.flavor_access,
            ("flavor_id", "project_id"),
            1,
            owners=lambda k: [("flavor", k["flavor_id"])],
            requires=lambda r: [("flavor", str(r["flavor_id"]), "flavor")],
        ),
        Kind(
            "quota",
            compute.quotas,
            ("kind", "owner", "resource"),
            1,
            owners=_quota_owners,
            requires=_quota_requires,
            travels=lambda k: k["kind"] == "project",
        ),
        Kind(
            "group_member",
            identity.group_members,
            ("group_id", "user_id"),
            2,
            owners=lambda k: [("group", k["group_id"]), ("user", k["user_id"])],
            requires=lambda r: [
                ("group", str(r["group_id"]), "group"),
                ("user", str(r["user_id"]), "user"),
            ],
        ),
        Kind(
            "role_assignment",
            identity.assignments,
            ("actor_type", "actor_id", "target_type", "target_id", "role_id"),
            2,
            owners=_assignment_owners,
            requires=_assignment_requires,
            travels=_assignment_travels,
        ),
        Kind(
            "keypair",
            compute.keypairs,
            ("user_id", "name"),
            2,
            owners=lambda k: [("user", k["user_id"])],
            requires=lambda r: [("user", str(r["user_id"]), "user")],
            local_columns=("id",),
        ),
    )
}

# Which child kinds hang under a parent kind, and by which key column.
CHILDREN: dict[str, list[tuple[str, dict[str, str]]]] = {
    "project": [
        ("quota", {"kind": "project", "owner": "{key}"}),
        ("role_assignment", {"target_type": "project", "target_id": "{key}"}),
    ],
    "user": [
        ("group_member", {"user_id": "{key}"}),
        ("role_assignment", {"actor_type": "user", "actor_id": "{key}"}),
        ("keypair", {"user_id": "{key}"}),
    ],
    "group": [
        ("group_member", {"group_id": "{key}"}),
        ("role_assignment", {"actor_type": "group", "actor_id": "{key}"}),
    ],
    "flavor": [("flavor_access", {"flavor_id": "{key}"})],
}


def delivery_rank(kind_name: str, op: str) -> int:
    """Where a row goes in the delivery order: parents first, deletes children first."""
    return rank_of(KINDS[kind_name], op)


def rank_of(kind: Kind, op: str) -> int:
    # Deletes go children first: after every upsert of the batch, in reverse rank.
    return kind.rank if op != "delete" else 10 + (2 - kind.rank)
