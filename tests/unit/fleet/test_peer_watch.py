"""A site's watch over its peers on a fake clock: the health state machine at its
boundaries, and its own probes (what counts as an answer, what the reason says)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fleet_kit import assess

from edgefed.services.fleet.health import PROBE_PATH, Condition, PeerHealth, PeerWatch
from edgefed.testkit.fleet_views import fleet_view
from edgefed.testkit.inprocess import site_settings


def test_a_peer_answering_exactly_at_the_timeout_is_still_online() -> None:
    assert assess(last_contact=94.0).status is Condition.ONLINE
    assert assess(last_contact=93.9).status is Condition.OFFLINE


def test_a_peer_at_the_degraded_rtt_is_online_and_above_it_degraded() -> None:
    assert assess(rtt_ms=500.0).status is Condition.ONLINE
    assert assess(rtt_ms=500.1).status is Condition.DEGRADED
    # A slow peer that stopped answering is offline, not degraded.
    assert assess(rtt_ms=900.0, last_contact=80.0).status is Condition.OFFLINE
    # Unknown RTT: online.
    assert assess(rtt_ms=None).reason == "answering"


def test_a_peer_never_reached_says_since_when_and_the_last_error() -> None:
    early = assess(last_contact=None, watched_since=98.0)
    assert (early.status, early.reason) == (Condition.ONLINE, "not heard from yet")
    assert early.last_seen_seconds_ago is None
    late = assess(last_contact=None, watched_since=10.0, last_error="timed out")
    assert late.status is Condition.OFFLINE
    assert late.reason == (
        "no answer since this site started watching it 90 s ago (last error: timed out)"
    )


def test_a_clock_behind_the_contact_counts_as_just_heard() -> None:
    health = assess(last_contact=105.0)
    assert health.status is Condition.ONLINE and health.last_seen_seconds_ago == 0.0


def test_health_renders_rounded() -> None:
    health = PeerHealth("Paris", Condition.DEGRADED, "slow", 1.26, 512.345)
    assert health.to_json() == {
        "name": "Paris",
        "status": "degraded",
        "reason": "slow",
        "last_seen_seconds_ago": 1.3,
        "rtt_ms": 512.3,
    }
    none = PeerHealth("Paris", Condition.ONLINE, "x", None, None).to_json()
    assert (none["last_seen_seconds_ago"], none["rtt_ms"]) == (None, None)


def watch(
    tmp_path: Path, handler: Any, clock: list[float], *, names: tuple[str, ...] = ("Paris",)
) -> PeerWatch:
    fleet = fleet_view("Berlin", ("Berlin", *names))
    ctx = SimpleNamespace(
        name="Berlin",
        fleet=fleet,
        peers=fleet.peers,
        settings=site_settings(tmp_path),
        http=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
    )
    return PeerWatch(ctx, now=lambda: clock[0])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("answer", "reached", "error"),
    [
        (httpx.Response(204), True, None),
        (httpx.Response(401), True, None),  # it answers: it is there
        (httpx.Response(404), True, None),
        (httpx.Response(503), False, "HTTP 503"),
        (httpx.ConnectError("connection refused"), False, "connection refused"),
        (httpx.ReadTimeout("slow"), False, "timed out"),
    ],
)
async def test_a_probe_counts_any_answer_below_500(
    tmp_path: Path, answer: Any, reached: bool, error: str | None
) -> None:
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        if isinstance(answer, Exception):
            raise answer
        return answer

    clock = [50.0]
    peer_watch = watch(tmp_path, handler, clock)
    await peer_watch.probe(["Paris"])
    assert paths == [PROBE_PATH]
    assert ("Paris" in peer_watch.probed_ok) is reached
    assert peer_watch.last_error.get("Paris") == error
    if reached:
        assert peer_watch.probed_ok["Paris"] == 50.0


async def test_a_success_clears_the_last_error(tmp_path: Path) -> None:
    answers = iter([httpx.Response(503), httpx.Response(204)])
    clock = [50.0]
    peer_watch = watch(tmp_path, lambda r: next(answers), clock)
    await peer_watch.probe(["Paris"])
    assert peer_watch.last_error == {"Paris": "HTTP 503"}
    clock[0] = 51.0
    await peer_watch.probe(["Paris"])
    assert peer_watch.last_error == {} and peer_watch.probed_ok == {"Paris": 51.0}


async def test_a_peer_with_no_address_is_not_probed(tmp_path: Path) -> None:
    asked: list[httpx.Request] = []
    peer_watch = watch(tmp_path, lambda r: asked.append(r) or httpx.Response(204), [0.0])
    await peer_watch.probe(["Atlantis"])
    assert asked == [] and peer_watch.probed_ok == {}


async def test_quiet_peers_are_those_not_reached_for_half_the_timeout(tmp_path: Path) -> None:
    clock = [100.0]
    peer_watch = watch(tmp_path, lambda r: httpx.Response(204), clock, names=("Paris", "Rome"))
    assert peer_watch.quiet_peers() == ["Paris", "Rome"]  # never reached
    peer_watch.probed_ok = {"Paris": 98.0, "Rome": 96.0}
    assert peer_watch.quiet_peers() == ["Rome"]  # timeout 6 s: quiet after 3 s
    clock[0] = 101.5
    assert peer_watch.quiet_peers() == ["Paris", "Rome"]


async def test_the_watch_assesses_with_the_measured_rtt_and_the_last_error(
    tmp_path: Path,
) -> None:
    clock = [100.0]
    peer_watch = watch(tmp_path, lambda r: httpx.Response(204), clock, names=("Paris", "Rome"))
    peer_watch.ctx.fleet.rtt["Berlin"] = {"Paris": 800.0}
    peer_watch.probed_ok = {"Paris": 99.0, "Rome": 80.0}
    peer_watch.last_error = {"Rome": "connection refused"}
    health = peer_watch.assess()
    assert health["Paris"].status is Condition.DEGRADED and health["Paris"].rtt_ms == 800.0
    assert health["Rome"].status is Condition.OFFLINE
    assert "last error: connection refused" in health["Rome"].reason
    assert "still reached us" not in health["Rome"].reason


def test_a_large_fleet_with_an_unreadable_aggregate_scope_watches_nothing(
    tmp_path: Path,
) -> None:
    names = tuple(f"S{i:02d}" for i in range(1, 20))
    peer_watch = watch(tmp_path, lambda r: httpx.Response(204), [0.0], names=names)
    assert peer_watch.peers() == []  # 20 sites, above the limit, no aggregate: no one
    peer_watch.ctx.settings = site_settings(tmp_path, watch_all_peers_max_sites=20)
    assert len(peer_watch.peers()) == 19  # at the limit: everyone
    peer_watch.ctx.settings = site_settings(
        tmp_path, watch_all_peers_max_sites=5, fleet_aggregate="@region="
    )
    assert peer_watch.peers() == []
    peer_watch.ctx.fleet = None
    assert peer_watch.peers() == [] and peer_watch.heard_from("S01") is None
