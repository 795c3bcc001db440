"""Progress of synchronisation, as the source sees it, and the tree below it.

Per target: how many resources are pending, in flight, done, failing and parked as
conflicts, with the failing ones listed (last error, attempts); and, as a receiver, the
conflicts recorded here (pushes that clashed with a row this site holds). A source also
asks each of its receivers for their own report (signed, with a short timeout), so the
top of a hierarchy (central → regional → edge) shows the whole tree; a receiver that
does not answer is shown as unreachable, which is itself useful progress information.

A receiver gives its report only to its sources, and to each only what concerns it:
the resources that source delivered, the image pulls from it, the conflicts with it
(the counts per target are numbers, not rows). Nothing marked for someone else leaks.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from edgefed.api.context import SiteContext
from edgefed.core.errors import EdgefedError
from edgefed.store.sync import (
    CONFLICT,
    DONE,
    FAILING,
    INFLIGHT,
    PENDING,
    ConflictRepository,
    SyncRepository,
)
from edgefed.sync.peers import signed_call

REPORT_PATH = "/edge/v1/sync/progress/report"
# How many levels further down the asked receiver reports.
DEPTH_HEADER = "x-edgefed-sync-depth"
CHILD_TIMEOUT_SECONDS = 3.0
MAX_DEPTH = 4
STATES = (PENDING, INFLIGHT, DONE, FAILING, CONFLICT)
CONFLICTS_SHOWN = 50


async def local_report(
    ctx: SiteContext,
    repo: SyncRepository,
    *,
    kind: str | None = None,
    key: str | None = None,
    breakers: dict[str, str] | None = None,
    inflight: dict[str, int] | None = None,
    for_source: str | None = None,
) -> dict[str, Any]:
    """This site's progress; ``for_source``: the report that source may see."""
    counts = await repo.counts()
    # Rows being pushed stay pending in the database; the workers know which they are.
    for target, n in (inflight or {}).items():
        by_state = counts.setdefault(target, {})
        moved = min(n, by_state.get(PENDING, 0) + by_state.get(FAILING, 0))
        from_pending = min(moved, by_state.get(PENDING, 0))
        by_state[PENDING] = by_state.get(PENDING, 0) - from_pending
        by_state[FAILING] = by_state.get(FAILING, 0) - (moved - from_pending)
        by_state[INFLIGHT] = by_state.get(INFLIGHT, 0) + moved
    targets = {
        target: {
            **{state: by_state.get(state, 0) for state in STATES},
            "total": sum(by_state.values()),
            "breaker": (breakers or {}).get(target, "closed"),
        }
        for target, by_state in sorted(counts.items())
    }
    receivers = await repo.list_receivers()
    for receiver in receivers:
        targets.setdefault(
            receiver,
            {
                **dict.fromkeys(STATES, 0),
                "total": 0,
                "breaker": (breakers or {}).get(receiver, "closed"),
            },
        )
    failing = await repo.entries(states=[FAILING, CONFLICT], limit=50, received_from=for_source)
    conflicts = ConflictRepository(repo.store)
    report: dict[str, Any] = {
        "site": ctx.name,
        "sources": await repo.list_sources() if for_source is None else [for_source],
        "receivers": receivers,
        "targets": targets,
        "failing": [_entry(e) for e in failing],
        "images": [
            {k: f[k] for k in ("image_id", "sha256", "source", "state", "attempts", "last_error")}
            for f in await repo.fetch_states(source=for_source)
        ],
        "conflicts": [
            conflict_view(c) for c in await conflicts.list(source=for_source, limit=CONFLICTS_SHOWN)
        ],
    }
    if for_source is None:
        report["registrations"] = [
            {"receiver": r["name"], "state": r["state"]}
            for r in await repo.registrations()
            if r["state"] != "accepted"
        ]
    if kind is not None or key is not None:
        report["resources"] = [
            _entry(e)
            for e in await repo.entries(kind=kind, key=key, limit=500, received_from=for_source)
        ]
    return report


def conflict_view(c: dict[str, Any]) -> dict[str, Any]:
    """A recorded conflict as the API shows it."""
    return {
        "source": c["source"],
        "kind": c["kind"],
        "id": c["key"],
        "op": c["op"],
        "clash": c["clash"],
        "held": {"kind": c["held_kind"], "id": c["held_key"], "origin": c["held_origin"]},
        "message": c["message"],
        "first_seen": c["first_seen"],
        "last_seen": c["last_seen"],
        "count": c["count"],
    }


def _entry(e: dict[str, Any]) -> dict[str, Any]:
    return {
        "target": e["target"],
        "kind": e["kind"],
        "id": e["key"],
        "version": e["version"],
        "op": e["op"],
        "state": e["state"],
        "attempts": e["attempts"],
        "last_error": e["last_error"],
        # when the source recorded the last change of state (for done: the receiver's ack)
        "updated_at": e["updated_at"],
    }


async def tree(
    ctx: SiteContext, repo: SyncRepository, *, depth: int, breakers: dict[str, str] | None = None,
    inflight: dict[str, int] | None = None, kind: str | None = None, key: str | None = None,
    for_source: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """This site's report with its receivers' trees under ``children``."""
    report = await local_report(
        ctx, repo, kind=kind, key=key, breakers=breakers, inflight=inflight, for_source=for_source
    )
    if depth <= 0:
        report["children"] = []
        return report
    receivers = report["receivers"]
    answers = await asyncio.gather(*(_child(ctx, name, depth - 1) for name in receivers))
    report["children"] = list(answers)
    return report


async def _child(ctx: SiteContext, name: str, depth: int) -> dict[str, Any]:
    try:
        r = await signed_call(
            ctx, name, "GET", REPORT_PATH, timeout=CHILD_TIMEOUT_SECONDS,
            headers={DEPTH_HEADER: str(depth)},
        )  # fmt: skip
    except (httpx.HTTPError, EdgefedError) as exc:
        return {"site": name, "reachable": False, "error": f"{type(exc).__name__}: {exc}"}
    if r.status_code != 200:
        return {"site": name, "reachable": False, "error": f"answered {r.status_code}"}
    body: dict[str, Any] = r.json()
    body["reachable"] = True
    return body
