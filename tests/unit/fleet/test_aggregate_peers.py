"""One aggregation against peers that answer whatever the test says: each site is
reported with the reason it could not report itself, aggregators are named, the chain
of aggregators stops cycles, and a scope that cannot be read is a 400."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fleet_kit import add_member

from edgefed.api.auth import Principal
from edgefed.core.errors import ValidationFailed
from edgefed.services.fleet.aggregate import MAX_DEPTH, STATUS_PATH, aggregate
from edgefed.services.fleet.health import Condition, PeerHealth
from edgefed.testkit.asgi_fleet import FleetTransport
from edgefed.testkit.inprocess import InProcessSite, run_site, site_settings
from edgefed.testkit.inprocess_fleet import ctx_of

Handler = Callable[[httpx.Request], httpx.Response]
ADMIN = Principal(
    token="the-callers-token",
    claims={"iss": "Berlin", "user": {"id": "u", "name": "admin"}},
    roles=frozenset({"admin"}),
    user_id="u",
)


@contextlib.asynccontextmanager
async def berlin_and(tmp_path: Path, peers: dict[str, Handler]) -> AsyncIterator[InProcessSite]:
    transport = FleetTransport()
    settings = site_settings(
        tmp_path / "berlin", health_interval_seconds=3600.0, gossip_interval_seconds=3600.0
    )
    async with run_site(settings, transport=transport) as site:
        for name, handler in peers.items():
            await add_member(site, name, labels={"region": "eu"})
            transport.apps[f"{name.lower()}.test"] = httpx.MockTransport(handler)  # type: ignore[assignment]
        yield site


def status_of(*reports: dict[str, Any], aggregators: list[Any] | None = None) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        body = {"fleet_status": {"sites": list(reports), "aggregators": aggregators or []}}
        return httpx.Response(200, json=body)

    return handle


def own(name: str, status: str = "online", reason: str = "answering") -> dict[str, Any]:
    return {"name": name, "reported_by": name, "status": status, "reason": reason}


async def run(site: InProcessSite, scope: str | None = "*", **kwargs: Any) -> dict[str, Any]:
    result = await aggregate(
        ctx_of(site),
        ADMIN,
        scope=scope,
        explicit=True,
        peer_health=kwargs.pop("health", {}),
        **kwargs,
    )
    return {r["name"]: r for r in result.to_json(ctx_of(site))["sites"]} | {
        "_aggregators": result.aggregators
    }


async def test_each_site_that_answers_is_reported_as_it_reports_itself(tmp_path: Path) -> None:
    asked: list[httpx.Request] = []

    def paris(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        return status_of(own("Paris", "degraded", "1 critical alarm"))(request)

    async with berlin_and(tmp_path, {"Paris": paris}) as site:
        sites = await run(site)
        assert sites["Berlin"]["reported_by"] == "Berlin"
        assert (sites["Paris"]["status"], sites["Paris"]["reason"]) == (
            "degraded",
            "1 critical alarm",
        )
        [request] = asked
        assert request.url.path == STATUS_PATH
        assert request.url.params["nested"] == "1" and request.url.params["via"] == "Berlin"
        assert request.headers["x-auth-token"] == "the-callers-token"


@pytest.mark.parametrize(
    ("handler", "status", "reason"),
    [
        (lambda r: httpx.Response(500), "degraded", "status request answered HTTP 500"),
        (lambda r: httpx.Response(403, json={}), "degraded", "answered HTTP 403"),
        (lambda r: httpx.Response(200, content=b"<html>"), "degraded", "is not a report"),
        (lambda r: httpx.Response(200, json=["x"]), "degraded", "is not a report"),
    ],
)
async def test_a_site_that_answers_without_a_report_is_degraded_with_why(
    tmp_path: Path, handler: Handler, status: str, reason: str
) -> None:
    async with berlin_and(tmp_path, {"Paris": handler}) as site:
        paris = (await run(site))["Paris"]
        assert (paris["status"], paris["reported_by"]) == (status, "Berlin")
        assert reason in paris["reason"]
        assert paris["capacity"] is None and paris["region"] == "eu"


async def test_a_site_that_does_not_answer_is_offline_with_the_error(tmp_path: Path) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with berlin_and(tmp_path, {"Paris": refuse}) as site:
        paris = (await run(site))["Paris"]
        assert paris["status"] == "offline"
        assert paris["reason"] == "status request failed: connection refused"


async def test_a_site_the_monitor_knows_offline_is_not_asked(tmp_path: Path) -> None:
    asked: list[httpx.Request] = []
    async with berlin_and(
        tmp_path, {"Paris": lambda r: asked.append(r) or httpx.Response(500)}
    ) as site:
        health = {"Paris": PeerHealth("Paris", Condition.OFFLINE, "no answer for 9 s", 9.0, None)}
        paris = (await run(site, health=health))["Paris"]
        assert (paris["status"], paris["reason"]) == ("offline", "no answer for 9 s")
        assert asked == []


async def test_a_regional_aggregator_brings_its_sites_and_is_named(tmp_path: Path) -> None:
    hub = status_of(own("EuHub"), own("Lyon"), own("Nice", "offline", "no answer for 30 s"))
    async with berlin_and(tmp_path, {"EuHub": hub}) as site:
        sites = await run(site)
        assert set(sites) - {"_aggregators"} == {"Berlin", "EuHub", "Lyon", "Nice"}
        assert sites["Nice"]["status"] == "offline"
        assert sites["_aggregators"] == [{"name": "EuHub", "sites": 3, "status": "online"}]


async def test_sites_already_on_the_chain_are_not_asked_again(tmp_path: Path) -> None:
    asked: list[str] = []

    def answer(name: str) -> Handler:
        def handle(request: httpx.Request) -> httpx.Response:
            asked.append(name)
            return status_of(own(name))(request)

        return handle

    async with berlin_and(tmp_path, {"Paris": answer("Paris"), "Rome": answer("Rome")}) as site:
        await run(site, via=("Central", "Rome"))
        assert asked == ["Paris"]
        asked.clear()
        # A chain at the depth limit asks nobody: this site reports itself only.
        chain = tuple(f"A{i}" for i in range(MAX_DEPTH))
        sites = await run(site, via=chain)
        assert asked == [] and set(sites) == {"Berlin", "_aggregators"}


async def test_without_a_scope_a_site_reports_itself_only(tmp_path: Path) -> None:
    async with berlin_and(tmp_path, {"Paris": status_of(own("Paris"))}) as site:
        assert set(await run(site, scope=None)) == {"Berlin", "_aggregators"}


async def test_an_unreadable_scope_is_a_400_naming_it(tmp_path: Path) -> None:
    async with berlin_and(tmp_path, {}) as site:
        with pytest.raises(ValidationFailed, match="Invalid scope '@region='") as info:
            await run(site, scope="@region=")
        assert info.value.field == "scope"


async def test_the_rtt_matrix_covers_the_reported_sites_only(tmp_path: Path) -> None:
    async with berlin_and(tmp_path, {"Paris": status_of(own("Paris"))}) as site:
        ctx = ctx_of(site)
        ctx.fleet.rtt = {  # type: ignore[union-attr]
            "Berlin": {"Paris": 10.123, "Oslo": 5.0},
            "Paris": {"Berlin": 11.0},
            "Oslo": {"Berlin": 5.0},
        }
        result = await aggregate(ctx, ADMIN, scope="*", explicit=True, peer_health={})
        assert result.to_json(ctx)["rtt_ms"] == {
            "Berlin": {"Paris": 10.12},
            "Paris": {"Berlin": 11.0},
        }
