"""The site's state in the Prometheus text format, beside the request metrics.

Names follow Prometheus conventions: an ``edgefed_`` prefix, base units in the name
(``_bytes``, ``_seconds``), ``_total`` only on counters, per-host and per-peer values
as labels (sum them in PromQL for the site). The values come from the same telemetry
snapshot as the JSON at ``/edge/v1/telemetry``, gathered fresh for every scrape, and
per guest from compute's ``GuestMetrics`` port (its counters cached there). Guests are
labelled by server id, project and host, never by name: ``/metrics`` asks for no token.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from edgefed.api.guestmetrics import GuestSample
from edgefed.services.fleet.health import Condition, PeerHealth

MIB = 1024 * 1024
GIB = 1024 * MIB
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BREAKER_VALUE = {"closed": 0.0, "half-open": 0.5, "open": 1.0}


class SnapshotCollector:
    """A prometheus_client collector over one telemetry snapshot."""

    def __init__(
        self,
        snapshot: dict[str, Any],
        peers: dict[str, PeerHealth],
        guests: Sequence[GuestSample] = (),
    ):
        self.snapshot = snapshot
        self.peers = peers
        self.guests = guests

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot
        site = snap["site"]
        per_host = (
            ("vcpus", "vcpus", 1, "virtual CPUs"),
            ("ram_mb", "memory_bytes", MIB, "memory"),
            ("disk_gb", "disk_bytes", GIB, "disk"),
        )
        for key, unit, scale, what in per_host:
            cap = GaugeMetricFamily(
                f"edgefed_capacity_{unit}",
                f"Schedulable {what} of a compute host (physical times allocation ratio).",
                labels=["site", "host"],
            )
            used = GaugeMetricFamily(
                f"edgefed_used_{unit}",
                f"{what.capitalize()} taken by the live servers on a compute host.",
                labels=["site", "host"],
            )
            for host in snap["hosts"]:
                cap.add_metric([site, host["name"]], host[key]["total"] * scale)
                used.add_metric([site, host["name"]], host[key]["used"] * scale)
            yield cap
            yield used
        pool = snap.get("volumes")
        if pool is not None:
            for name, key, what in (
                ("edgefed_volume_storage_bytes", "total_gb", "Storage of the volume pool."),
                ("edgefed_volume_free_bytes", "free_gb", "Free storage of the volume pool."),
                ("edgefed_volume_allocated_bytes", "allocated_gb", "What volumes are sized to."),
                ("edgefed_volume_capacity_bytes", "capacity_gb",
                 "What volumes may be sized to in all (storage times over-subscription)."),
            ):  # fmt: skip
                gauge = GaugeMetricFamily(name, what, labels=["site"])
                gauge.add_metric([site], pool[key] * GIB)
                yield gauge
        down = GaugeMetricFamily(
            "edgefed_host_up", "1 when a compute host is available.", labels=["site", "host"]
        )
        for host in snap["hosts"]:
            down.add_metric([site, host["name"]], 0 if host["availability"] == "down" else 1)
        yield down
        servers = GaugeMetricFamily(
            "edgefed_servers", "Live servers by vm_state.", labels=["site", "state"]
        )
        for state, count in snap["servers"]["by_state"].items():
            servers.add_metric([site, state], count)
        yield servers
        alarms = GaugeMetricFamily(
            "edgefed_alarms_active", "Active alarms by severity.", labels=["site", "severity"]
        )
        for severity, count in snap["alarms"].items():
            alarms.add_metric([site, severity], count)
        yield alarms
        up = GaugeMetricFamily(
            "edgefed_peer_up",
            "1 when a peer site answers within the peer timeout (online or degraded).",
            labels=["site", "peer"],
        )
        rtt = GaugeMetricFamily(
            "edgefed_peer_rtt_seconds", "Measured RTT to a peer site.", labels=["site", "peer"]
        )
        for name, health in sorted(self.peers.items()):
            up.add_metric([site, name], 0 if health.status is Condition.OFFLINE else 1)
        for name, ms in snap["rtt_ms"].items():
            rtt.add_metric([site, name], ms / 1000.0)
        yield up
        yield rtt
        yield from sync_metrics(site, snap.get("sync"))
        yield from guest_metrics(site, self.guests)


GUEST_LABELS = ["site", "server", "project", "host"]
# (family, help, attribute): counters from the driver's diagnostics.
GUEST_COUNTERS = (
    ("edgefed_guest_cpu_seconds", "CPU time the guest's vCPUs used.", "cpu_time_seconds"),
    ("edgefed_guest_disk_read_bytes", "Bytes the guest read from its disks.", "disk_read_bytes"),
    ("edgefed_guest_disk_write_bytes", "Bytes the guest wrote to its disks.", "disk_write_bytes"),
    ("edgefed_guest_network_receive_bytes", "Bytes the guest's NICs received.", "net_rx_bytes"),
    ("edgefed_guest_network_transmit_bytes", "Bytes the guest's NICs sent.", "net_tx_bytes"),
)


def guest_metrics(site: str, guests: Sequence[GuestSample]) -> Iterator[Metric]:
    """One series per live server placed on a host; counters where the driver gives them."""
    power = GaugeMetricFamily(
        "edgefed_guest_power_state",
        "A server's power state (Nova's: 1 running, 3 paused, 4 shutdown, 7 suspended).",
        labels=GUEST_LABELS,
    )
    vcpus = GaugeMetricFamily("edgefed_guest_vcpus", "A server's vCPUs.", labels=GUEST_LABELS)
    memory = GaugeMetricFamily(
        "edgefed_guest_memory_bytes", "A server's RAM (its flavor's).", labels=GUEST_LABELS
    )
    used = GaugeMetricFamily(
        "edgefed_guest_memory_used_bytes",
        "Memory the guest's hypervisor process holds.",
        labels=GUEST_LABELS,
    )
    families = [
        (CounterMetricFamily(name, what, labels=GUEST_LABELS), attr)
        for name, what, attr in GUEST_COUNTERS
    ]
    for guest in guests:
        labels = [site, guest.server_id, guest.project_id, guest.host]
        power.add_metric(labels, guest.power_state)
        vcpus.add_metric(labels, guest.vcpus)
        memory.add_metric(labels, guest.ram_mb * MIB)
        if guest.memory_used_mb is not None:
            used.add_metric(labels, guest.memory_used_mb * MIB)
        for family, attr in families:
            value = getattr(guest, attr)
            if value is not None:
                family.add_metric(labels, value)
    yield from (power, vcpus, memory, used)
    yield from (family for family, _ in families)


def sync_metrics(site: str, sync: dict[str, Any] | None) -> Iterator[Metric]:
    """The sync gauges; without a sync report, the families are there but empty."""
    depth = GaugeMetricFamily(
        "edgefed_sync_queue_depth",
        "Sync deliveries waiting in this site's outbox.",
        labels=["site"],
    )
    lag = GaugeMetricFamily(
        "edgefed_sync_lag_seconds",
        "Age of the oldest undelivered sync item in this site's outbox.",
        labels=["site"],
    )
    pending = GaugeMetricFamily(
        "edgefed_sync_peer_pending",
        "Sync deliveries waiting for one peer.",
        labels=["site", "peer"],
    )
    failing = GaugeMetricFamily(
        "edgefed_sync_peer_failing",
        "Sync deliveries to one peer whose last attempt failed.",
        labels=["site", "peer"],
    )
    oldest = GaugeMetricFamily(
        "edgefed_sync_peer_oldest_pending_seconds",
        "Age of the oldest sync delivery waiting for one peer.",
        labels=["site", "peer"],
    )
    breaker = GaugeMetricFamily(
        "edgefed_sync_peer_breaker_open",
        "1 while the circuit breaker towards a peer is open (0.5 half-open, 0 closed).",
        labels=["site", "peer"],
    )
    conflicts = GaugeMetricFamily(
        "edgefed_sync_conflicts",
        "Rows a sync source pushed that clash with rows this site holds (not applied).",
        labels=["site", "source"],
    )
    if sync is not None:
        depth.add_metric([site], float(sync["queue_depth"]))
        lag.add_metric([site], float(sync["lag_seconds"]))
        for peer, values in sync["peers"].items():
            pending.add_metric([site, peer], float(values["pending"]))
            failing.add_metric([site, peer], float(values["failing"]))
            oldest.add_metric([site, peer], float(values["oldest_pending_seconds"]))
            breaker.add_metric([site, peer], BREAKER_VALUE.get(values["breaker"], 0.0))
        for source, count in sync.get("conflicts_by_source", {}).items():
            conflicts.add_metric([site, source], float(count))
    yield from (depth, lag, pending, failing, oldest, breaker, conflicts)


def exposition(
    snapshot: dict[str, Any], peers: dict[str, PeerHealth], guests: Sequence[GuestSample] = ()
) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot, peers, guests))
    return bytes(generate_latest(registry))
