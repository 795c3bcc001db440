"""The receiver side of a push: a source's rows applied, taking only what is the source's.

A receiver trusts a source with the data it is the source of, and with nothing else
(DESIGN.md §5): a compromised source must not overwrite or delete the receiver's own
rows, nor rows another source delivered. Per item:

- a row the receiver holds is changed or deleted only if its ``origin`` is the pushing
  source. Predictable IDs are why this matters: a project "demo" created here has the
  same ID as the source's "demo";
- a child row (role assignment, group membership, quota, key pair, flavor access) only
  if every parent its key points at is the source's: an assignment of the source's user
  on this site's ``admin`` project would hand out this site's authority. Assignments
  travel only on projects and quotas only for projects (``Kind.travels``); the rest is
  refused with 403;
- a new row may not take a unique name that a row held here already has.

A clash is not an error of the source's making, so it is *recorded* (``sync_conflicts``:
source, resource, what this site holds there and whose it is, first and last seen, how
often) and answered 409 with status ``conflict``, which the source parks until the
receiver resolves it (docs/sync.md). A malformed item is a 400 for that item and leaves
nothing behind. One transaction per push, committed before the answer; the tokens a
push makes ineffective (a user disabled or deleted, an assignment or membership
removed) are returned as ``Revocation``s for the caller to revoke after the commit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import UniqueConstraint, bindparam, delete, insert, select, update
from sqlalchemy.exc import StatementError

from edgefed.store import identity
from edgefed.store.engine import AsyncConnection, Store
from edgefed.store.sync import (
    Mark,
    applied,
    conflicts,
    marks,
    put_mark_in,
    upsert_applied,
    upsert_marks,
    want_blob,
)
from edgefed.store.sync_conflicts import Clash, record_conflict
from edgefed.store.sync_rows import (
    KINDS,
    MAX_KEY_LENGTH,
    MAX_VERSION,
    Kind,
    current_origin,
    decode_row,
    delete_row,
    exists,
    read_row,
    upsert_row,
    valid_sha256,
)

APPLIED, STALE, DUPLICATE, REJECTED, CONFLICT = (
    "applied", "stale", "duplicate", "rejected", "conflict",
)  # fmt: skip
# Parent kinds with a one-column key that need nothing else to exist first and carry no
# blob: a run of their upserts is applied in bulk (_Run.bulk).
BULK_KINDS = frozenset({"project", "role", "flavor", "user", "group"})


@dataclass(frozen=True)
class Revocation:
    """Tokens of ``user_id`` (on ``project_id`` only, when given) to make ineffective."""

    user_id: str
    project_id: str | None = None


@dataclass
class PushOutcome:
    results: list[dict[str, Any]]
    revocations: list[Revocation] = field(default_factory=list)

    @property
    def conflicts(self) -> int:
        return sum(1 for r in self.results if r["status"] == CONFLICT)


class SyncReceiver:
    def __init__(
        self,
        store: Store,
        *,
        max_blob_bytes: int,
        normalise_targets: Callable[[str], str] = lambda text: text,
    ):
        self.store = store
        self.max_blob_bytes = max_blob_bytes
        # A pushed target set (to pass on down a hierarchy): normalised, or an error.
        self.normalise_targets = normalise_targets

    async def apply_batch(
        self,
        *,
        source: str,
        items: Sequence[Mapping[str, Any]],
        has_blob: Callable[[str], bool],
        now: float,
    ) -> PushOutcome:
        """Apply received items in order, in one transaction (committed before returning).

        Each result says ``applied``, ``stale`` (older than the version held),
        ``duplicate`` (this version was applied already), ``conflict`` (409: a row held
        here is not the source's; recorded) or ``rejected`` with a code and an error.
        Should the database still refuse the batch (a constraint the checks did not
        foresee), every item is retried in its own transaction, so one bad row cannot
        hold back the others.
        """
        revocations: list[Revocation] = []
        try:
            async with self.store.write() as conn:
                run = _Run(self, conn, source, has_blob, now, revocations)
                results = await run.all(items)
        except StatementError:
            results, revocations = [], []
            for item in items:
                mine: list[Revocation] = []
                try:
                    async with self.store.write() as conn:
                        run = _Run(self, conn, source, has_blob, now, mine)
                        results.append(await run.one(item))
                except StatementError as exc:
                    results.append(_rejected(item, 400, f"the database refused it: {exc.orig}"))
                else:
                    revocations += mine
        identity._bump(self.store)
        return PushOutcome(results, revocations)


@dataclass
class _Run:
    """One push's items, applied on one connection."""

    receiver: SyncReceiver
    conn: AsyncConnection
    source: str
    has_blob: Callable[[str], bool]
    now: float
    revocations: list[Revocation]
    _has_conflicts: bool | None = None
    # Target sets normalised in this push (every item of a first sync carries the same).
    _normalised: dict[str, str] = field(default_factory=dict)

    async def all(self, items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Every item in order: runs of plain upserts of one kind together, the rest one by one."""
        results: list[dict[str, Any]] = []
        run: list[Mapping[str, Any]] = []
        for item in items:
            if _bulk_eligible(item) and (not run or run[0]["kind"] == item["kind"]):
                run.append(item)
                continue
            if run:
                results += await self.bulk(run)
                run = []
            if _bulk_eligible(item):
                run.append(item)
            else:
                results.append(await self.one(item))
        if run:
            results += await self.bulk(run)
        return results

    # ---- one item ---------------------------------------------------------------------

    async def one(self, item: Mapping[str, Any]) -> dict[str, Any]:
        problem = _check_item(item)
        if problem is not None:
            return _rejected(item, 400, problem)
        kind = KINDS[item["kind"]]
        key, version, op = str(item["key"]), int(item["version"]), str(item["op"])
        key_values = kind.key_values(key)
        if not kind.travels(key_values):
            return _rejected(item, 403, _not_travelling(kind, key_values))
        if op == "delete":
            return await self._delete(item, kind, key, version)
        row = item.get("row")
        if not isinstance(row, Mapping):
            return _rejected(item, 400, f"{kind.name} {key}: an upsert needs its row")
        try:
            values = decode_row(kind, row)
        except (ValueError, TypeError) as exc:
            return _rejected(item, 400, f"{kind.name} {key}: {exc}")
        if kind.key_of(values) != key:
            return _rejected(
                item, 400, f"{kind.name} {key}: the row's key is {kind.key_of(values)}"
            )
        targets = self._targets(item)
        if isinstance(targets, dict):
            return targets
        if kind.name == "image":
            refused = self._check_image(item, key, values)
            if refused is not None:
                return refused
        for need_kind, need_key, what in kind.requires(values):
            if not await exists(self.conn, need_kind, need_key):
                return _rejected(
                    item, 422, f"{kind.name} {key} refers to {what} {need_key}, unknown here"
                )
        clash = await self._ownership_clash(kind, key)
        if clash is None:
            clash = await _unique_clash(self.conn, kind, values)
        if clash is not None:
            return await self._conflict(item, kind, key, clash)
        held = await self._held_version(kind.name, key)
        if held is not None and version <= held:
            return _result(item, STALE if version < held else DUPLICATE)
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
        await self._settled(kind.name, [key], version=version)
        return _result(item, APPLIED)

    async def _delete(
        self, item: Mapping[str, Any], kind: Kind, key: str, version: int
    ) -> dict[str, Any]:
        if not await exists(self.conn, kind.name, key):
            # Nothing held: nothing to do, and nothing written (a delete of a key that
            # was never here is no reason to keep a record of it).
            return _result(item, APPLIED)
        clash = await self._ownership_clash(kind, key)
        if clash is not None:
            return await self._conflict(item, kind, key, clash)
        held = await self._held_version(kind.name, key)
        if held is not None and version <= held:
            return _result(item, STALE if version < held else DUPLICATE)
        self.revocations += await _revocations_of_delete(self.conn, kind, key)
        await delete_row(self.conn, kind, key)
        await self.conn.execute(delete(marks).where(marks.c.kind == kind.name, marks.c.key == key))
        await self._settled(kind.name, [key], version=version)
        return _result(item, APPLIED)

    def _targets(self, item: Mapping[str, Any]) -> str | dict[str, Any] | None:
        """The item's pass-on target set, normalised; a rejection if it is malformed."""
        targets = item.get("targets")
        if targets is None or targets == "":
            return None
        if not isinstance(targets, str) or len(targets) > 1024:
            return _rejected(item, 400, "targets must be a target set of at most 1024 characters")
        known = self._normalised.get(targets)
        if known is not None:
            return known
        try:
            known = self._normalised[targets] = self.receiver.normalise_targets(targets)
        except Exception as exc:  # the normaliser's own error tree: ValidationFailed
            return _rejected(item, 400, f"targets: {exc}")
        return known

    def _check_image(
        self, item: Mapping[str, Any], key: str, values: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        sha = values.get("blob_sha256")
        if sha is None:
            return None
        if not valid_sha256(sha):
            return _rejected(item, 400, f"image {key}: blob_sha256 must be 64 lowercase hex digits")
        size = values.get("size")
        if size is None or size < 0:
            return _rejected(item, 400, f"image {key}: an image with data needs its size")
        if size > self.receiver.max_blob_bytes:
            return _rejected(
                item,
                413,
                f"image {key} is {size} bytes, more than this site takes "
                f"({self.receiver.max_blob_bytes}, max_image_bytes)",
            )
        return None

    async def _ownership_clash(self, kind: Kind, key: str) -> Clash | None:
        """The held row (this one, or a parent its key points at) that is not the source's."""
        if kind.has_origin:
            found, origin = await current_origin(self.conn, kind, key)
            if found and origin != self.source:
                return Clash("id", kind.name, key, origin, f"{kind.name} {key} {_held_by(origin)}")
        for parent_kind, parent_key in kind.owners(kind.key_values(key)):
            found, origin = await current_origin(self.conn, KINDS[parent_kind], parent_key)
            if found and origin != self.source:
                return Clash(
                    "parent", parent_kind, parent_key, origin,
                    f"{kind.name} {key} belongs to {parent_kind} {parent_key}, "
                    f"which {_held_by(origin)}",
                )  # fmt: skip
        return None

    async def _conflict(
        self, item: Mapping[str, Any], kind: Kind, key: str, clash: Clash
    ) -> dict[str, Any]:
        if clash.clash == "name" and clash.held_origin == self.source:
            # Two rows of this source with one name: a rename on its way (the other row's
            # newer version frees the name), not a clash with this site. Retried.
            return _rejected(item, 409, f"{clash.message}; retried")
        await record_conflict(
            self.conn, source=self.source, kind=kind.name, key=key, op=str(item["op"]),
            clash=clash, now=self.now,
        )  # fmt: skip
        self._has_conflicts = True
        return {**_result(item, CONFLICT), "code": 409, "error": clash.message,
                "held": {"kind": clash.held_kind, "id": clash.held_key,
                         "origin": clash.held_origin}}  # fmt: skip

    async def _held_version(self, kind: str, key: str) -> int | None:
        """The version of ``key`` this source delivered here (another source's is none
        of its business: a row held for another source is a clash, checked first)."""
        query = select(applied.c.version).where(
            applied.c.kind == kind, applied.c.key == key, applied.c.source == self.source
        )
        row = (await self.conn.execute(query)).first()
        return None if row is None else int(row[0])

    async def _settled(self, kind: str, keys: Sequence[str], *, version: int | None) -> None:
        """Applied: remember the version, and forget a clash this source had there."""
        if version is not None:
            await self.conn.execute(
                upsert_applied(self.conn),
                [{"kind": kind, "key": k, "source": self.source, "version": version}
                 for k in keys],
            )  # fmt: skip
        if self._has_conflicts is None:
            query = select(conflicts.c.key).where(conflicts.c.source == self.source).limit(1)
            self._has_conflicts = (await self.conn.execute(query)).first() is not None
        if self._has_conflicts:
            for chunk in _chunks(keys):
                await self.conn.execute(
                    delete(conflicts).where(
                        conflicts.c.source == self.source,
                        conflicts.c.kind == kind,
                        conflicts.c.key.in_(list(chunk)),
                    )
                )

    # ---- a run of plain upserts ---------------------------------------------------------

    async def bulk(self, run: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Upserts of one parent kind, checked and written with a few statements per run.

        The same checks as ``one`` (row shape, owner, unique names, held version), read
        for the whole run at once: a first sync of 10,000 projects is then a few dozen
        statements per push instead of seven per project.
        """
        kind = KINDS[str(run[0]["kind"])]
        keys = [str(i["key"]) for i in run]
        if len(set(keys)) != len(keys):
            return [await self.one(i) for i in run]
        conn = self.conn
        key_col = kind.table.c[kind.key_columns[0]]
        held: dict[str, int] = {}
        existing: dict[str, tuple[str | None, bool]] = {}  # key -> (origin, enabled)
        enabled = kind.table.c.enabled if kind.name == "user" else None
        for chunk in _chunks(keys):
            query = select(applied.c.key, applied.c.version).where(
                applied.c.kind == kind.name,
                applied.c.key.in_(chunk),
                applied.c.source == self.source,
            )
            held.update({str(k): int(v) for k, v in await conn.execute(query)})
            selected = [key_col, kind.table.c.origin]
            if enabled is not None:
                selected.append(enabled)
            for found in await conn.execute(select(*selected).where(key_col.in_(chunk))):
                existing[str(found[0])] = (
                    found[1],
                    bool(found[2]) if enabled is not None else True,
                )
        results: dict[int, dict[str, Any]] = {}
        candidates: list[tuple[int, Mapping[str, Any], dict[str, Any]]] = []
        for n, item in enumerate(run):
            key, version = keys[n], int(item["version"])
            try:
                values = decode_row(kind, item["row"])
            except (ValueError, TypeError) as exc:
                results[n] = _rejected(item, 400, f"{kind.name} {key}: {exc}")
                continue
            if kind.key_of(values) != key:
                results[n] = _rejected(
                    item, 400, f"{kind.name} {key}: the row's key is {kind.key_of(values)}"
                )
                continue
            targets = self._targets(item)
            if isinstance(targets, dict):
                results[n] = targets
                continue
            if key in existing and existing[key][0] != self.source:
                origin = existing[key][0]
                clash = Clash("id", kind.name, key, origin, f"{kind.name} {key} {_held_by(origin)}")
                results[n] = await self._conflict(item, kind, key, clash)
                continue
            if key in held and version <= held[key]:
                results[n] = _result(item, STALE if version < held[key] else DUPLICATE)
                continue
            if targets:
                values = {**values, "__targets": targets}
            candidates.append((n, item, values))
        for columns in _unique_groups(kind):
            taken: dict[tuple[Any, ...], tuple[str, str | None]] = {}
            wanted = [
                tuple(v[c] for c in columns)
                for _, _, v in candidates
                if all(c in v for c in columns)
            ]
            firsts = sorted({w[0] for w in wanted}, key=str)
            for chunk in _chunks(firsts):
                query = select(
                    key_col, kind.table.c.origin, *(kind.table.c[c] for c in columns)
                ).where(kind.table.c[columns[0]].in_(chunk))
                for found_row in await conn.execute(query):
                    taken[tuple(found_row[2:])] = (str(found_row[0]), found_row[1])
            kept = []
            for n, item, values in candidates:
                if all(c in values for c in columns):
                    unique_values = tuple(values[c] for c in columns)
                    other = taken.get(unique_values)
                    if other is not None and other[0] != keys[n]:
                        clash = _name_clash(kind, keys[n], columns, values, other[0], other[1])
                        results[n] = await self._conflict(item, kind, keys[n], clash)
                        continue
                    taken[unique_values] = (keys[n], self.source)
                kept.append((n, item, values))
            candidates = kept
        inserts: dict[frozenset[str], list[dict[str, Any]]] = {}
        updates: dict[frozenset[str], list[dict[str, Any]]] = {}
        marked: list[dict[str, Any]] = []
        for n, _item, values in candidates:
            targets = values.pop("__targets", None)
            if targets:
                marked.append({"kind": kind.name, "key": keys[n], "targets": targets,
                               "origin": self.source, "created_at": self.now})  # fmt: skip
            row = {**values, "origin": self.source}
            if keys[n] in existing:
                if kind.name == "user" and existing[keys[n]][1] and values.get("enabled") is False:
                    self.revocations.append(Revocation(keys[n]))
                changes = {f"v_{c}": v for c, v in row.items() if c not in kind.key_columns}
                updates.setdefault(frozenset(changes), []).append({"k_key": keys[n], **changes})
            else:
                inserts.setdefault(frozenset(row), []).append(row)
        for rows in inserts.values():
            await conn.execute(insert(kind.table), rows)
        for columns_set, rows in updates.items():
            stmt = (
                update(kind.table)
                .where(key_col == bindparam("k_key"))
                .values({c[2:]: bindparam(c) for c in columns_set})
            )
            await conn.execute(stmt, rows)
        if marked:
            await conn.execute(upsert_marks(conn), marked)
        if candidates:
            await conn.execute(
                upsert_applied(conn),
                [{"kind": kind.name, "key": keys[n], "source": self.source,
                  "version": int(i["version"])} for n, i, _ in candidates],
            )  # fmt: skip
            await self._settled(kind.name, [keys[n] for n, _, _ in candidates], version=None)
        for n, item, _ in candidates:
            results[n] = _result(item, APPLIED)
        return [results[n] for n in range(len(run))]


# ---- helpers ----------------------------------------------------------------------------


def _held_by(origin: str | None) -> str:
    if origin is None:
        return "is this site's own (not the source's)"
    return f"was received from sync source {origin}"


def _not_travelling(kind: Kind, key_values: Mapping[str, str]) -> str:
    if kind.name == "role_assignment":
        return (
            f"a source may grant roles only on its projects, not on this site's "
            f"{key_values['target_type']} {key_values['target_id']}"
        )
    return f"a {kind.name} {kind.key_of(key_values)} is this site's own: a source may not set it"


def _name_clash(
    kind: Kind, key: str, columns: tuple[str, ...], values: Mapping[str, Any],
    other: str, origin: str | None,
) -> Clash:  # fmt: skip
    shown = ", ".join(f"{c}={values[c]}" for c in columns)
    who = "this site's own" if origin is None else f"received from {origin}"
    return Clash(
        "name", kind.name, other, origin, f"{kind.name} {key}: {kind.name} {other} ({who}) "
        f"already has {shown}"
    )  # fmt: skip


async def _unique_clash(
    conn: AsyncConnection, kind: Kind, values: Mapping[str, Any]
) -> Clash | None:
    """Another row (another key) holding the same unique values: a name clash."""
    for columns in _unique_groups(kind):
        if not all(c in values for c in columns):
            continue
        shown = [kind.table.c[c] for c in kind.key_columns]
        if kind.has_origin:
            shown.append(kind.table.c.origin)
        query = select(*shown).where(*(kind.table.c[c] == values[c] for c in columns))
        for row in await conn.execute(query):
            found = dict(row._mapping)
            other = kind.key_of(found)
            if other != kind.key_of(values):
                return _name_clash(
                    kind, kind.key_of(values), columns, values, other, found.get("origin")
                )
    return None


async def _revocations_of_delete(conn: AsyncConnection, kind: Kind, key: str) -> list[Revocation]:
    """Whose tokens the delete of ``kind`` ``key`` makes ineffective."""
    k = kind.key_values(key)
    if kind.name == "user":
        return [Revocation(key)]
    if kind.name == "group_member":
        return [Revocation(k["user_id"])]
    if kind.name == "group":
        return [Revocation(u) for u in await _members(conn, key)]
    if kind.name == "role_assignment":
        project = k["target_id"] if k["target_type"] == "project" else None
        if k["actor_type"] == "user":
            return [Revocation(k["actor_id"], project)]
        if k["actor_type"] == "group":
            return [Revocation(u, project) for u in await _members(conn, k["actor_id"])]
    return []


async def _members(conn: AsyncConnection, group_id: str) -> list[str]:
    members = identity.group_members
    query = select(members.c.user_id).where(members.c.group_id == group_id)
    return [str(r[0]) for r in await conn.execute(query)]


def _check_item(item: Mapping[str, Any]) -> str | None:
    """What is wrong with an item's envelope (kind, key, version, op), or None."""
    name = item.get("kind")
    kind = KINDS.get(name) if isinstance(name, str) else None
    if kind is None:
        return f"unknown resource kind {str(item.get('kind'))[:40]!r}"
    key = item.get("key")
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH or "\x00" in key:
        return f"a {kind.name} key is a string of 1 to {MAX_KEY_LENGTH} characters"
    try:
        kind.key_values(key)
    except ValueError as exc:
        return str(exc)
    version = item.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 0 <= version <= MAX_VERSION:
        return f"{kind.name} {key}: the version is an integer from 0 to {MAX_VERSION}"
    if item.get("op") not in ("upsert", "delete"):
        return f"{kind.name} {key}: op is upsert or delete"
    return None


def _result(item: Mapping[str, Any], status: str) -> dict[str, Any]:
    def shown(value: Any) -> str | None:
        return value[:MAX_KEY_LENGTH] if isinstance(value, str) else None

    version = item.get("version")
    return {"kind": shown(item.get("kind")), "key": shown(item.get("key")),
            "version": version if isinstance(version, int) else None,
            "status": status}  # fmt: skip


def _rejected(item: Mapping[str, Any], code: int, error: str) -> dict[str, Any]:
    return {**_result(item, REJECTED), "code": code, "error": error}


def _bulk_eligible(item: Mapping[str, Any]) -> bool:
    kind = item.get("kind")
    return (
        isinstance(kind, str)
        and kind in BULK_KINDS
        and item.get("op") == "upsert"
        and isinstance(item.get("key"), str)
        and isinstance(item.get("row"), Mapping)
        and _check_item(item) is None
    )


def _chunks(values: Sequence[Any], size: int = 500) -> Iterable[Sequence[Any]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


def _unique_groups(kind: Kind) -> list[tuple[str, ...]]:
    """Column groups that must be unique, besides the key itself."""
    groups = [
        tuple(c.name for c in con.columns)
        for con in kind.table.constraints
        if isinstance(con, UniqueConstraint)
    ]
    groups += [(c.name,) for c in kind.table.c if c.unique]
    return [g for g in groups if set(g) != set(kind.key_columns)]
