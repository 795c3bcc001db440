"""The peer health state machine and the watch that feeds it, on a fake clock."""

from __future__ import annotations

from pathlib import Path

from fleet_kit import assess

from edgefed.services.fleet.health import Condition, PeerWatch
from edgefed.testkit.inprocess_fleet import ctx_of, fleet


def test_a_peer_heard_within_the_timeout_is_online() -> None:
    assert assess(last_contact=94.5).status is Condition.ONLINE


def test_a_peer_silent_past_the_timeout_is_offline_with_how_long() -> None:
    health = assess(last_contact=90.0, last_error="connection refused")
    assert health.status is Condition.OFFLINE
    assert "no answer for 10 s" in health.reason
    assert "connection refused" in health.reason


def test_a_slow_peer_is_degraded_with_its_rtt() -> None:
    health = assess(rtt_ms=800.0)
    assert health.status is Condition.DEGRADED
    assert "800 ms" in health.reason


def test_a_peer_never_heard_is_offline_only_after_the_timeout() -> None:
    assert assess(last_contact=None, now=5.0).status is Condition.ONLINE
    late = assess(last_contact=None, now=20.0)
    assert late.status is Condition.OFFLINE
    assert "20 s" in late.reason


async def test_the_watch_turns_a_silent_peer_offline_and_back(tmp_path: Path) -> None:
    async with fleet(tmp_path, ["Berlin", "Denver"], joined=True) as sites:
        ctx = ctx_of(sites["Berlin"])
        clock = [1000.0]
        watch = PeerWatch(ctx, now=lambda: clock[0])
        assert ctx.fleet is not None
        watch.probed_ok["Denver"] = 1000.0
        assert watch.assess()["Denver"].status is Condition.ONLINE
        clock[0] = 1007.0
        assert watch.assess()["Denver"].status is Condition.OFFLINE
        assert watch.quiet_peers() == ["Denver"]
        ctx.fleet.last_seen["Denver"] = 1006.0  # Denver's gossip reaching us is not enough
        assert watch.assess()["Denver"].status is Condition.OFFLINE
        assert "still reached us" in watch.assess()["Denver"].reason
        await watch.probe(["Denver"])  # Denver answers the ping
        assert watch.assess()["Denver"].status is Condition.ONLINE


def _watch_in_fleet(size: int, tmp_path: Path, **settings: object) -> PeerWatch:
    from types import SimpleNamespace

    from edgefed.api.context import Keyring
    from edgefed.api.fleetview import FleetView
    from edgefed.core.ed25519 import Ed25519PrivateKey
    from edgefed.core.fleet import SiteEntry
    from edgefed.core.tokens import public_key_b64
    from edgefed.testkit.inprocess import site_settings

    key = public_key_b64(Ed25519PrivateKey.generate().public_key())
    view = FleetView(self_name="S00", keyring=Keyring(), peers={})
    view.apply(
        SiteEntry(
            name=f"S{i:02d}",
            endpoint=f"http://127.0.0.1:{7000 + i}",
            public_key=key,
            labels={"region": "eu" if i % 2 else "us"},
        )
        for i in range(size)
    )
    ctx = SimpleNamespace(name="S00", fleet=view, settings=site_settings(tmp_path, **settings))
    return PeerWatch(ctx)  # type: ignore[arg-type]


def test_a_small_fleet_is_watched_in_full_mesh(tmp_path: Path) -> None:
    watch = _watch_in_fleet(16, tmp_path)
    assert len(watch.peers()) == 15


def test_in_a_large_fleet_a_site_watches_only_what_it_aggregates(tmp_path: Path) -> None:
    # Every one of a hundred sites probing the 99 others would be 3,300 probes a second.
    assert _watch_in_fleet(100, tmp_path).peers() == []
    watch = _watch_in_fleet(100, tmp_path, fleet_aggregate="@region=eu")
    assert watch.peers() == [f"S{i:02d}" for i in range(1, 100, 2)]
    assert set(watch.assess()) == set(watch.peers())  # no alarm about unwatched sites
    assert _watch_in_fleet(100, tmp_path, watch_all_peers_max_sites=200).peers() != []
