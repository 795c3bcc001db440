"""The progress tree: this site's report with each receiver's own under ``children``,
asked for one level less each time down, and a receiver that does not answer (or
refuses) shown as unreachable with the reason, which is progress information too.
Receivers are an httpx ``MockTransport``; this site is a real one."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx

from edgefed.store.sync import OutboxEntry, SyncRepository, delivery_rank
from edgefed.sync.progress import DEPTH_HEADER, REPORT_PATH, tree
from edgefed.testkit.inprocess import InProcessSite

RECEIVERS = ("Denver", "Lyon", "Rome", "Oslo")


def receivers_answering(asked: list[tuple[str, str | None]]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        site = request.url.host.split(".")[0].capitalize()
        assert request.url.path == REPORT_PATH
        asked.append((site, request.headers.get(DEPTH_HEADER)))
        if site == "Denver":
            return httpx.Response(200, json={"site": "Denver", "children": [], "targets": {}})
        if site == "Lyon":
            return httpx.Response(403, json={"error": "not a source of Lyon"})
        raise httpx.ConnectError("the link is cut", request=request)

    return httpx.MockTransport(handle)


async def berlin_with_receivers(
    site: InProcessSite, asked: list[Any]
) -> tuple[Any, SyncRepository]:
    repo = SyncRepository(site.app.state.ctx.store)
    for name in RECEIVERS:
        await repo.request_receiver(name, now=1.0, accept=True)
    ctx = dataclasses.replace(
        site.app.state.ctx,
        http=httpx.AsyncClient(transport=receivers_answering(asked)),
        peers={n: f"http://{n.lower()}.test" for n in RECEIVERS if n != "Oslo"},
    )
    return ctx, repo


async def test_each_receiver_reports_below_this_site(site: InProcessSite) -> None:
    asked: list[tuple[str, str | None]] = []
    ctx, repo = await berlin_with_receivers(site, asked)
    report = await tree(ctx, repo, depth=3)

    assert report["site"] == "Berlin"
    assert report["receivers"] == sorted(RECEIVERS)
    children = {c["site"]: c for c in report["children"]}
    assert [c["site"] for c in report["children"]] == sorted(RECEIVERS)  # in order
    assert children["Denver"]["reachable"] is True
    assert children["Denver"]["children"] == []
    assert children["Lyon"] == {"site": "Lyon", "reachable": False, "error": "answered 403"}
    assert children["Rome"]["reachable"] is False
    assert children["Rome"]["error"] == "ConnectError: the link is cut"
    # Oslo left the fleet: not asked at all, and said so.
    assert children["Oslo"]["reachable"] is False
    assert "Oslo is not an active member" in children["Oslo"]["error"]
    # Each is asked for one level less.
    assert sorted(asked) == [("Denver", "2"), ("Lyon", "2"), ("Rome", "2")]


async def test_depth_zero_asks_no_receiver(site: InProcessSite) -> None:
    asked: list[tuple[str, str | None]] = []
    ctx, repo = await berlin_with_receivers(site, asked)
    report = await tree(ctx, repo, depth=0)
    assert report["children"] == []
    assert asked == []
    # Every accepted receiver has a line even with nothing queued for it.
    assert set(report["targets"]) == set(RECEIVERS)
    assert {t["total"] for t in report["targets"].values()} == {0}


async def test_rows_in_flight_are_counted_as_such_with_the_breaker(site: InProcessSite) -> None:
    ctx, repo = await berlin_with_receivers(site, [])
    rank = delivery_rank("project", "upsert")
    entries = [OutboxEntry("Denver", "project", f"p{n}", 1, "upsert", rank=rank) for n in range(3)]
    await repo.enqueue(entries, now=1.0, force=False)
    report = await tree(ctx, repo, depth=0, breakers={"Denver": "open"}, inflight={"Denver": 2})
    denver = report["targets"]["Denver"]
    assert (denver["pending"], denver["inflight"], denver["total"]) == (1, 2, 3)
    assert denver["breaker"] == "open"
    assert report["targets"]["Lyon"]["breaker"] == "closed"
