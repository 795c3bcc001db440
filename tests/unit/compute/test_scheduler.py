"""The scheduler's choice: filters with allocation ratios on top of live usage, the most
free RAM wins (ties by name), a pinned host or zone narrows the choice, and when nothing
fits every host says why."""

from __future__ import annotations

from collections.abc import Sequence

from edgefed.core.settings import HostSpec
from edgefed.services.compute.scheduler import Ratios, Request, Scheduler
from edgefed.store.compute import HostUsage


class Hosts:
    """A host source from plain values: hosts, their zones, refusals and own ratios."""

    def __init__(
        self, *hosts: HostSpec, zones: dict[str, str] | None = None,
        refused: dict[str, str] | None = None, ratios: dict[str, Ratios] | None = None,
    ) -> None:  # fmt: skip
        self._hosts = hosts
        self._zones = zones or {}
        self._refused = refused or {}
        self._ratios = ratios or {}

    def hosts(self) -> Sequence[HostSpec]:
        return self._hosts

    def availability_zone(self, host: str) -> str:
        return self._zones.get(host, "nova")

    def refusal(self, host: str) -> str | None:
        return self._refused.get(host)

    def ratios(self, host: str) -> Ratios | None:
        return self._ratios.get(host)

    async def refresh(self) -> None:
        return None


SMALL = Request(vcpus=2, ram_mb=2048, disk_gb=20)


def host(name: str, *, vcpus: int = 8, ram_mb: int = 8192, disk_gb: int = 100) -> HostSpec:
    return HostSpec(name=name, vcpus=vcpus, ram_mb=ram_mb, disk_gb=disk_gb)


def used(name: str, *, vcpus: int = 0, ram_mb: int = 0, disk_gb: int = 0) -> HostUsage:
    return HostUsage(host=name, vcpus=vcpus, ram_mb=ram_mb, disk_gb=disk_gb, servers=1)


def test_the_host_with_most_free_ram_wins_and_ties_go_by_name() -> None:
    scheduler = Scheduler(source=Hosts(host("b"), host("a"), host("c")), ratios=Ratios())
    assert scheduler.choose(SMALL, {}) == "a"  # all equal: by name
    usages = {"a": used("a", ram_mb=4096), "b": used("b", ram_mb=1024)}
    assert scheduler.choose(SMALL, usages) == "c"  # nothing used there
    usages["c"] = used("c", ram_mb=2048)
    assert scheduler.choose(SMALL, usages) == "b"


def test_allocation_ratios_overcommit_what_they_say_and_a_hosts_own_come_first() -> None:
    cpu_bound = Request(vcpus=6, ram_mb=512, disk_gb=1)
    small_cpu = host("h", vcpus=4)
    assert Scheduler(source=Hosts(small_cpu), ratios=Ratios(cpu=1.0)).choose(cpu_bound, {}) is None
    assert Scheduler(source=Hosts(small_cpu), ratios=Ratios(cpu=2.0)).choose(cpu_bound, {}) == "h"
    own = Hosts(small_cpu, ratios={"h": Ratios(cpu=1.0)})
    assert Scheduler(source=own, ratios=Ratios(cpu=16.0)).choose(cpu_bound, {}) is None
    assert Scheduler(source=Hosts(small_cpu), ratios=Ratios()).capacity(small_cpu) == (
        16,
        8192,
        100,
    )


def test_a_request_fits_exactly_to_the_last_unit_of_each_resource() -> None:
    scheduler = Scheduler(
        source=Hosts(host("h", vcpus=4, ram_mb=4096, disk_gb=40)), ratios=Ratios(cpu=1.0)
    )
    full = {"h": used("h", vcpus=2, ram_mb=2048, disk_gb=20)}
    assert scheduler.choose(SMALL, full) == "h"  # exactly the rest
    for over in (Request(3, 2048, 20), Request(2, 2049, 20), Request(2, 2048, 21)):
        assert scheduler.choose(over, full) is None


def test_zones_pinned_hosts_and_refusals_narrow_the_choice_and_say_why() -> None:
    source = Hosts(
        host("a"), host("b"), host("c", ram_mb=1024),
        zones={"a": "edge", "b": "core", "c": "core"},
        refused={"b": "b is locked"},
    )  # fmt: skip
    scheduler = Scheduler(source=source, ratios=Ratios())
    assert scheduler.zones() == {"edge", "core"}
    assert scheduler.choose(Request(1, 512, 1, availability_zone="edge"), {}) == "a"
    assert scheduler.choose(Request(1, 512, 1, host="c"), {}) == "c"
    reasons: list[str] = []
    assert (
        scheduler.choose(Request(1, 2048, 1, availability_zone="core"), {}, reasons=reasons) is None
    )
    assert reasons == [
        "a is in zone edge",
        "b is locked",
        "c has no room for 1 vCPU, 2048 MB RAM, 1 GB disk",
    ]
