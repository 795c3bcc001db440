"""The site's state in the Prometheus text format, read back with Prometheus's parser:
names, units scaled to bytes and seconds, labels, and the sync gauges."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from edgefed.services.fleet.health import Condition, PeerHealth
from edgefed.services.fleet.prometheus import exposition

GIB = 1024**3


def snapshot(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "site": "Berlin",
        "hosts": [
            {
                "name": "b1",
                "availability": "available",
                "vcpus": {"total": 64, "used": 4},
                "ram_mb": {"total": 2048, "used": 512},
                "disk_gb": {"total": 100, "used": 10},
            },
            {
                "name": "b2",
                "availability": "down",
                "vcpus": {"total": 8, "used": 0},
                "ram_mb": {"total": 1024, "used": 0},
                "disk_gb": {"total": 10, "used": 0},
            },
        ],
        "servers": {"total": 3, "by_state": {"active": 2, "error": 1}},
        "alarms": {"critical": 0, "major": 2, "minor": 0, "warning": 1},
        "rtt_ms": {"Paris": 25.0},
        "sync": None,
    }
    base.update(over)
    return base


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found[(name, tuple(sorted({"site": "Berlin", **labels}.items())))]


PEERS = {
    "Paris": PeerHealth("Paris", Condition.DEGRADED, "slow", 1.0, 700.0),
    "Rome": PeerHealth("Rome", Condition.OFFLINE, "gone", None, None),
}


def test_capacity_and_use_are_per_host_in_base_units() -> None:
    found = samples(exposition(snapshot(), PEERS))
    assert value(found, "edgefed_capacity_vcpus", host="b1") == 64
    assert value(found, "edgefed_capacity_memory_bytes", host="b1") == 2048 * 1024 * 1024
    assert value(found, "edgefed_used_memory_bytes", host="b1") == 512 * 1024 * 1024
    assert value(found, "edgefed_capacity_disk_bytes", host="b2") == 10 * GIB
    assert value(found, "edgefed_used_disk_bytes", host="b1") == 10 * GIB
    assert value(found, "edgefed_host_up", host="b1") == 1
    assert value(found, "edgefed_host_up", host="b2") == 0


def test_servers_alarms_and_peers_are_labelled() -> None:
    found = samples(exposition(snapshot(), PEERS))
    assert value(found, "edgefed_servers", state="active") == 2
    assert value(found, "edgefed_servers", state="error") == 1
    assert value(found, "edgefed_alarms_active", severity="major") == 2
    assert value(found, "edgefed_alarms_active", severity="critical") == 0
    # Degraded still answers: up. Offline: down.
    assert value(found, "edgefed_peer_up", peer="Paris") == 1
    assert value(found, "edgefed_peer_up", peer="Rome") == 0
    assert value(found, "edgefed_peer_rtt_seconds", peer="Paris") == 0.025


def test_without_a_sync_report_the_sync_families_are_there_and_empty() -> None:
    text = exposition(snapshot(), {})
    families = {f.name: f for f in text_string_to_metric_families(text.decode())}
    for name in (
        "edgefed_sync_queue_depth",
        "edgefed_sync_lag_seconds",
        "edgefed_sync_peer_pending",
        "edgefed_sync_peer_breaker_open",
        "edgefed_sync_conflicts",
    ):
        assert name in families and families[name].samples == []


def test_the_sync_report_becomes_gauges_with_the_breaker_as_a_number() -> None:
    peer = {"pending": 4, "failing": 2, "oldest_pending_seconds": 12.5, "last_error": None}
    sync = {
        "queue_depth": 9,
        "lag_seconds": 30.0,
        "peers": {
            "Paris": {**peer, "breaker": "open"},
            "Rome": {**peer, "breaker": "half-open"},
            "Oslo": {**peer, "breaker": "closed"},
            "Nice": {**peer, "breaker": "melted"},
        },
        "conflicts_by_source": {"Central": 3},
    }
    found = samples(exposition(snapshot(sync=sync), {}))
    assert value(found, "edgefed_sync_queue_depth") == 9
    assert value(found, "edgefed_sync_lag_seconds") == 30.0
    assert value(found, "edgefed_sync_peer_pending", peer="Paris") == 4
    assert value(found, "edgefed_sync_peer_failing", peer="Paris") == 2
    assert value(found, "edgefed_sync_peer_oldest_pending_seconds", peer="Rome") == 12.5
    breaker = {p: value(found, "edgefed_sync_peer_breaker_open", peer=p) for p in sync["peers"]}
    assert breaker == {"Paris": 1.0, "Rome": 0.5, "Oslo": 0.0, "Nice": 0.0}
    assert value(found, "edgefed_sync_conflicts", source="Central") == 3


def test_a_site_without_hosts_servers_or_peers_still_renders() -> None:
    text = exposition(snapshot(hosts=[], servers={"total": 0, "by_state": {}}, rtt_ms={}), {})
    assert b"# TYPE edgefed_capacity_vcpus gauge" in text
    assert not any(name.startswith("edgefed_host_up") for name, _ in samples(text))
