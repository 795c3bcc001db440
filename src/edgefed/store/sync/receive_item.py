"""One pushed item applied at a receiver: only what is the pushing source's.

A receiver trusts a source with the data it is the source of, and with nothing else
(DESIGN.md section 5): a compromised source must not overwrite or delete the receiver's
own rows, nor rows another source delivered. Per item:

- a row the receiver holds is changed or deleted only if its ``origin`` is the pushing
  source. Predictable IDs are why this matters: a project "demo" created here has the
  same ID as the source's "demo";
- a child row (role assignment, group membership, quota, key pair, flavor access) only
  if every parent its key points at is the source's: an assignment of the source's user
  on this site's ``admin`` project would hand out this site's authority. Assignments
  travel only on projects and quotas only for projects (``Kind.travels``); the rest is
  refused with 403;
- a new row may not take a unique name that a row held here already has.

A clash is not an error of the source's making, so it is *recorded* (conflicts.py) and
answered 409 with status ``conflict``, which the source parks until the receiver
resolves it (docs/sync.md). The tokens an item makes ineffective (a user disabled or
deleted, an assignment or membership removed) are collected as ``Revocation``s for the
caller to revoke after the commit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select

from edgefed.store import identity
from edgefed.store.engine import AsyncConnection, upsert_insert
from edgefed.store.sync.codec import decode_row
from edgefed.store.sync.conflicts import Clash, record_conflict
from edgefed.store.sync.fetches import want_blob
from edgefed.store.sync.kinds import KINDS, Kind, valid_sha256
from edgefed.store.sync.marks import Mark, put_mark_in
from edgefed.store.sync.receive_checks import (
    APPLIED,
    CONFLICT,
    DUPLICATE,
    STALE,
    answer,
    check_item,
    chunks,
    held_by,
    not_travelling,
    rejection,
    unique_clash,
)
from edgefed.store.sync.rows import current_origin, delete_row, exists, read_row, upsert_row
from edgefed.store.sync.tables import applied, conflicts, marks


@dataclass(frozen=True)
class Revocation:
    """Tokens of ``user_id`` (on ``project_id`` only, when given) to make ineffective."""

    user_id: str
    project_id: str | None = None


@dataclass
class ItemRun:
    """One push's items, applied on one connection (the caller's transaction)."""

    conn: AsyncConnection
    source: str
    has_blob: Callable[[str], bool]
    now: float
    revocations: list[Revocation]
    max_blob_bytes: int
    # A pushed target set (to pass on down a hierarchy): normalised, or an error.
    normalise_targets: Callable[[str], str]
    has_conflicts: bool | None = None
    # Target sets normalised in this push (every item of a first sync carries the same).
    _normalised: dict[str, str] = field(default_factory=dict)

    # ---- one item ---------------------------------------------------------------------

    async def one(self, item: Mapping[str, Any]) -> dict[str, Any]:
        problem = check_item(item)
        if problem is not None:
            return rejection(item, 400, problem)
        kind = KINDS[item["kind"]]
        key, version, op = str(item["key"]), int(item["version"]), str(item["op"])
        key_values = kind.key_values(key)
        if not kind.travels(key_values):
            return rejection(item, 403, not_travelling(kind, key_values))
        if op == "delete":
            return await self.delete(item, kind, key, version)
        row = item.get("row")
        if not isinstance(row, Mapping):
            return rejection(item, 400, f"{kind.name} {key}: an upsert needs its row")
        try:
            values = decode_row(kind, row)
        except (ValueError, TypeError) as exc:
            return rejection(item, 400, f"{kind.name} {key}: {exc}")
        if kind.key_of(values) != key:
            return rejection(
                item, 400, f"{kind.name} {key}: the row's key is {kind.key_of(values)}"
            )
        targets = self.targets(item)
        if isinstance(targets, dict):
            return targets
        if kind.name == "image":
            refused = self.check_image(item, key, values)
            if refused is not None:
                return refused
        for need_kind, need_key, what in kind.requires(values):
            if not await exists(self.conn, need_kind, need_key):
                return rejection(
                    item, 422, f"{kind.name} {key} refers to {what} {need_key}, unknown here"
                )
        clash = await self.ownership_clash(kind, key)
        if clash is None:
            clash = await unique_clash(self.conn, kind, values)
        if clash is not None:
            return await self.conflict(item, kind, key, clash)
        held = await self.held_version(kind.name, key)
        if held is not None and version <= held:
            return answer(item, STALE if version < held else DUPLICATE)
        if kind.name == "user":
            before = await read_row(self.conn, kind, key)
            if before is not None and before["enabled"] and values.get("enabled") is False:
                self.revocations.append(Revocation(key))
        if kind.name == "image":
            sha = values.get("blob_sha256")
            if sha and not self.has_blob(str(sha)):
                await want_blob(
                    self.conn, image_id=key, sha256=str(sha), source=self.source,
                    size=values.get("size"),
                )  # fmt: skip
                if values.get("status") == "active":
                    values["status"] = "queued"
        await upsert_row(self.conn, kind, values, origin=self.source)
        if targets:
            await put_mark_in(self.conn, Mark(kind.name, key, targets, self.source), now=self.now)
        await self.settled(kind.name, [key], version=version)
        return answer(item, APPLIED)

    async def delete(
        self, item: Mapping[str, Any], kind: Kind, key: str, version: int
    ) -> dict[str, Any]:
        if not await exists(self.conn, kind.name, key):
            # Nothing held: nothing to do, and nothing written (a delete of a key that
            # was never here is no reason to keep a record of it).
            return answer(item, APPLIED)
        clash = await self.ownership_clash(kind, key)
        if clash is not None:
            return await self.conflict(item, kind, key, clash)
        held = await self.held_version(kind.name, key)
        if held is not None and version <= held:
            return answer(item, STALE if version < held else DUPLICATE)
        self.revocations += await revocations_of_delete(self.conn, kind, key)
        await delete_row(self.conn, kind, key)
        await self.conn.execute(delete(marks).where(marks.c.kind == kind.name, marks.c.key == key))
        await self.settled(kind.name, [key], version=version)
        return answer(item, APPLIED)

    def targets(self, item: Mapping[str, Any]) -> str | dict[str, Any] | None:
        """The item's pass-on target set, normalised; a rejection if it is malformed."""
        targets = item.get("targets")
        if targets is None or targets == "":
            return None
        if not isinstance(targets, str) or len(targets) > 1024:
            return rejection(item, 400, "targets must be a target set of at most 1024 characters")
        known = self._normalised.get(targets)
        if known is not None:
            return known
        try:
            known = self._normalised[targets] = self.normalise_targets(targets)
        except Exception as exc:  # the normaliser's own error tree: ValidationFailed
            return rejection(item, 400, f"targets: {exc}")
        return known

    def check_image(
        self, item: Mapping[str, Any], key: str, values: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        sha = values.get("blob_sha256")
        if sha is None:
            return None
        if not valid_sha256(sha):
            return rejection(item, 400, f"image {key}: blob_sha256 must be 64 lowercase hex digits")
        size = values.get("size")
        if size is None or size < 0:
            return rejection(item, 400, f"image {key}: an image with data needs its size")
        if size > self.max_blob_bytes:
            return rejection(
                item,
                413,
                f"image {key} is {size} bytes, more than this site takes "
                f"({self.max_blob_bytes}, max_image_bytes)",
            )
        return None

    async def ownership_clash(self, kind: Kind, key: str) -> Clash | None:
        """The held row (this one, or a parent its key points at) that is not the source's."""
        if kind.has_origin:
            found, origin = await current_origin(self.conn, kind, key)
            if found and origin != self.source:
                return Clash("id", kind.name, key, origin, f"{kind.name} {key} {held_by(origin)}")
        for parent_kind, parent_key in kind.owners(kind.key_values(key)):
            found, origin = await current_origin(self.conn, KINDS[parent_kind], parent_key)
            if found and origin != self.source:
                return Clash(
                    "parent", parent_kind, parent_key, origin,
                    f"{kind.name} {key} belongs to {parent_kind} {parent_key}, "
                    f"which {held_by(origin)}",
                )  # fmt: skip
        return None

    async def conflict(
        self, item: Mapping[str, Any], kind: Kind, key: str, clash: Clash
    ) -> dict[str, Any]:
        if clash.clash == "name" and clash.held_origin == self.source:
            # Two rows of this source with one name: a rename on its way (the other row's
            # newer version frees the name), not a clash with this site. Retried.
            return rejection(item, 409, f"{clash.message}; retried")
        await record_conflict(
            self.conn, source=self.source, kind=kind.name, key=key, op=str(item["op"]),
            clash=clash, now=self.now,
        )  # fmt: skip
        self.has_conflicts = True
        return {**answer(item, CONFLICT), "code": 409, "error": clash.message,
                "held": {"kind": clash.held_kind, "id": clash.held_key,
                         "origin": clash.held_origin}}  # fmt: skip

    async def held_version(self, kind: str, key: str) -> int | None:
        """The version of ``key`` this source delivered here (another source's is none
        of its business: a row held for another source is a clash, checked first)."""
        query = select(applied.c.version).where(
            applied.c.kind == kind, applied.c.key == key, applied.c.source == self.source
        )
        row = (await self.conn.execute(query)).first()
        return None if row is None else int(row[0])

    async def settled(self, kind: str, keys: Sequence[str], *, version: int | None) -> None:
        """Applied: remember the version, and forget a clash this source had there."""
        if version is not None:
            await self.conn.execute(
                upsert_applied(self.conn),
                [{"kind": kind, "key": k, "source": self.source, "version": version}
                 for k in keys],
            )  # fmt: skip
        if self.has_conflicts is None:
            query = select(conflicts.c.key).where(conflicts.c.source == self.source).limit(1)
            self.has_conflicts = (await self.conn.execute(query)).first() is not None
        if self.has_conflicts:
            for chunk in chunks(keys):
                await self.conn.execute(
                    delete(conflicts).where(
                        conflicts.c.source == self.source,
                        conflicts.c.kind == kind,
                        conflicts.c.key.in_(list(chunk)),
                    )
                )

    # ---- a run of plain upserts ---------------------------------------------------------


async def revocations_of_delete(conn: AsyncConnection, kind: Kind, key: str) -> list[Revocation]:
    """Whose tokens the delete of ``kind`` ``key`` makes ineffective."""
    k = kind.key_values(key)
    if kind.name == "user":
        return [Revocation(key)]
    if kind.name == "group_member":
        return [Revocation(k["user_id"])]
    if kind.name == "group":
        return [Revocation(u) for u in await members_of(conn, key)]
    if kind.name == "role_assignment":
        project = k["target_id"] if k["target_type"] == "project" else None
        if k["actor_type"] == "user":
            return [Revocation(k["actor_id"], project)]
        if k["actor_type"] == "group":
            return [Revocation(u, project) for u in await members_of(conn, k["actor_id"])]
    return []


async def members_of(conn: AsyncConnection, group_id: str) -> list[str]:
    members = identity.group_members
    query = select(members.c.user_id).where(members.c.group_id == group_id)
    return [str(r[0]) for r in await conn.execute(query)]


def upsert_applied(conn: AsyncConnection) -> Any:
    """The version of a resource applied here, and from which source."""
    stmt = upsert_insert(conn, applied)
    return stmt.on_conflict_do_update(
        index_elements=["kind", "key"],
        set_={"version": stmt.excluded.version, "source": stmt.excluded.source},
    )
