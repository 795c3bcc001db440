"""The site scheduler: which host runs a new server.

Filters (RAM, vCPU, disk, availability zone) keep the hosts whose capacity, times the
allocation ratio, still holds the flavor on top of what the live servers there already
use; the weigher picks the host with the most free RAM (Nova's default RAMWeigher),
ties broken by name so placement is deterministic. Hosts come from a ``HostSource``;
today that is the settings (``compute_hosts``), later the hosts inventory.

Usage is read from the store and the choice written back in one transaction
(``ServerRepository.claim_host``), so concurrent boots cannot overfill a host.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from edgefed.core.settings import HostSpec, SiteSettings
from edgefed.store.compute import HostUsage

NO_VALID_HOST = "No valid host was found. "


class HostSource(Protocol):
    def hosts(self) -> Sequence[HostSpec]: ...

    def availability_zone(self, host: str) -> str: ...


class SettingsHostSource:
    """The compute hosts listed in the site settings, all in the site's zone."""

    def __init__(self, settings: SiteSettings):
        self._hosts = settings.hosts
        self._zone = settings.availability_zone

    def hosts(self) -> Sequence[HostSpec]:
        return self._hosts

    def availability_zone(self, host: str) -> str:
        return self._zone


@dataclass(frozen=True, slots=True)
class Request:
    vcpus: int
    ram_mb: int
    disk_gb: int
    availability_zone: str | None = None
    host: str | None = None


@dataclass(frozen=True, slots=True)
class Ratios:
    cpu: float = 4.0
    ram: float = 1.0
    disk: float = 1.0


class Scheduler:
    def __init__(self, *, source: HostSource, ratios: Ratios):
        self.source = source
        self.ratios = ratios

    def capacity(self, host: HostSpec) -> tuple[int, int, int]:
        """(vcpus, ram_mb, disk_gb) the host may hand out, overcommit included."""
        return (
            int(host.vcpus * self.ratios.cpu),
            int(host.ram_mb * self.ratios.ram),
            int(host.disk_gb * self.ratios.disk),
        )

    def fits(self, host: HostSpec, usage: HostUsage, request: Request) -> bool:
        vcpus, ram, disk = self.capacity(host)
        return (
            usage.vcpus + request.vcpus <= vcpus
            and usage.ram_mb + request.ram_mb <= ram
            and usage.disk_gb + request.disk_gb <= disk
        )

    def choose(self, request: Request, usages: dict[str, HostUsage]) -> str | None:
        best: tuple[int, str] | None = None
        for host in self.source.hosts():
            if request.host is not None and host.name != request.host:
                continue
            zone = self.source.availability_zone(host.name)
            if request.availability_zone and request.availability_zone != zone:
                continue
            usage = usages.get(host.name, HostUsage(host=host.name))
            if not self.fits(host, usage, request):
                continue
            free_ram = self.capacity(host)[1] - usage.ram_mb
            key = (-free_ram, host.name)
            if best is None or key < best:
                best = key
        return None if best is None else best[1]

    def zones(self) -> set[str]:
        return {self.source.availability_zone(h.name) for h in self.source.hosts()}
