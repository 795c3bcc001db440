"""The site scheduler: which host runs a new server.

Filters (RAM, vCPU, disk, availability zone) keep the hosts whose capacity, times the
allocation ratio, still holds the flavor on top of what the live servers there already
use; the weigher picks the host with the most free RAM (Nova's default RAMWeigher),
ties broken by name so placement is deterministic. Hosts come from a ``HostSource``:
the hosts inventory (``InventoryHostSource``: unlocked, available ``worker`` and
``edgeworker`` hosts with the hardware their agents reported and their own allocation
ratios) or, while the inventory has no compute host, the settings (``compute_hosts``).
When nothing fits, the scheduler says why for each host.

Usage is read from the store and the choice written back in one transaction
(``ServerRepository.claim_host``), so concurrent boots cannot overfill a host.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from edgefed.core.settings import HostSpec, SiteSettings
from edgefed.store.compute import HostUsage
from edgefed.store.inventory import HostRecord, InventoryRepository

COMPUTE_PERSONALITIES = ("worker", "edgeworker")

NO_VALID_HOST = "No valid host was found. "


@dataclass(frozen=True, slots=True)
class Ratios:
    cpu: float = 4.0
    ram: float = 1.0
    disk: float = 1.0


class HostSource(Protocol):
    def hosts(self) -> Sequence[HostSpec]: ...

    def availability_zone(self, host: str) -> str: ...

    def refusal(self, host: str) -> str | None:
        """Why ``host`` takes no new server now (locked, down…), or None."""
        ...

    def ratios(self, host: str) -> Ratios | None:
        """The host's own allocation ratios, or None for the site's."""
        ...

    async def refresh(self) -> None: ...


class SettingsHostSource:
    """The compute hosts listed in the site settings, all in the site's zone."""

    def __init__(self, settings: SiteSettings):
        self._hosts = settings.hosts
        self._zone = settings.availability_zone

    def hosts(self) -> Sequence[HostSpec]:
        return self._hosts

    def availability_zone(self, host: str) -> str:
        return self._zone

    def refusal(self, host: str) -> str | None:
        return None

    def ratios(self, host: str) -> Ratios | None:
        return None

    async def refresh(self) -> None:
        return None


def _spec(host: HostRecord) -> HostSpec:
    hw = host.hardware or {}
    disks = hw.get("disks") or []
    disk_gb = sum(float(d.get("size_gb", 0)) for d in disks if isinstance(d, dict))
    return HostSpec(
        name=host.hostname,
        vcpus=int(hw.get("cpus") or 0),
        ram_mb=int(hw.get("memory_mb") or 0),
        disk_gb=int(disk_gb),
    )


class InventoryHostSource:
    """The inventory's compute hosts; the settings' hosts while it has none.

    ``refresh()`` reads the inventory (one query); the scheduler calls it before each
    placement, so a host locked or marked down a moment ago takes no new server.
    """

    def __init__(self, inventory: InventoryRepository, fallback: SettingsHostSource):
        self._inventory = inventory
        self._fallback = fallback
        self._hosts: list[HostSpec] = []
        self._records: dict[str, HostRecord] = {}

    async def refresh(self) -> None:
        records = [
            h for h in await self._inventory.list_hosts() if h.personality in COMPUTE_PERSONALITIES
        ]
        self._records = {h.hostname: h for h in records}
        self._hosts = [_spec(h) for h in sorted(records, key=lambda h: h.hostname)]

    @property
    def from_inventory(self) -> bool:
        return bool(self._hosts)

    def hosts(self) -> Sequence[HostSpec]:
        return self._hosts if self._hosts else self._fallback.hosts()

    def availability_zone(self, host: str) -> str:
        return self._fallback.availability_zone(host)

    def refusal(self, host: str) -> str | None:
        record = self._records.get(host)
        if record is None:
            return None
        if record.locked:
            return f"{host} is locked"
        if record.availability != "available":
            return f"{host} is {record.availability} (no heartbeat from its agent)"
        if not record.hardware:
            return f"{host} has not reported its hardware yet"
        return None

    def ratios(self, host: str) -> Ratios | None:
        record = self._records.get(host)
        if record is None:
            return None
        return Ratios(
            cpu=record.cpu_allocation_ratio,
            ram=record.ram_allocation_ratio,
            disk=record.disk_allocation_ratio,
        )


@dataclass(frozen=True, slots=True)
class Request:
    vcpus: int
    ram_mb: int
    disk_gb: int
    availability_zone: str | None = None
    host: str | None = None


class Scheduler:
    def __init__(self, *, source: HostSource, ratios: Ratios):
        self.source = source
        self.ratios = ratios

    async def refresh(self) -> None:
        await self.source.refresh()

    def capacity(self, host: HostSpec) -> tuple[int, int, int]:
        """(vcpus, ram_mb, disk_gb) the host may hand out, overcommit included."""
        ratios = self.source.ratios(host.name) or self.ratios
        return (
            int(host.vcpus * ratios.cpu),
            int(host.ram_mb * ratios.ram),
            int(host.disk_gb * ratios.disk),
        )

    def fits(self, host: HostSpec, usage: HostUsage, request: Request) -> bool:
        vcpus, ram, disk = self.capacity(host)
        return (
            usage.vcpus + request.vcpus <= vcpus
            and usage.ram_mb + request.ram_mb <= ram
            and usage.disk_gb + request.disk_gb <= disk
        )

    def choose(
        self,
        request: Request,
        usages: dict[str, HostUsage],
        *,
        reasons: list[str] | None = None,
    ) -> str | None:
        """The best host, or None; ``reasons`` collects why each host was passed over."""
        best: tuple[int, str] | None = None
        why = reasons if reasons is not None else []
        for host in self.source.hosts():
            if request.host is not None and host.name != request.host:
                continue
            zone = self.source.availability_zone(host.name)
            if request.availability_zone and request.availability_zone != zone:
                why.append(f"{host.name} is in zone {zone}")
                continue
            refusal = self.source.refusal(host.name)
            if refusal is not None:
                why.append(refusal)
                continue
            usage = usages.get(host.name, HostUsage(host=host.name))
            if not self.fits(host, usage, request):
                why.append(
                    f"{host.name} has no room for {request.vcpus} vCPU, "
                    f"{request.ram_mb} MB RAM, {request.disk_gb} GB disk"
                )
                continue
            free_ram = self.capacity(host)[1] - usage.ram_mb
            key = (-free_ram, host.name)
            if best is None or key < best:
                best = key
        return None if best is None else best[1]

    def zones(self) -> set[str]:
        return {self.source.availability_zone(h.name) for h in self.source.hosts()}
