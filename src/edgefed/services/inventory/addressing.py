"""Management network addressing, as sysinv's conductor does it.

When the management network is *dynamic*, the site allocates each host's address from
the network's pool (lowest free first) and refuses an address given by the operator;
when it is *static*, the operator gives each address and the site checks it lies in
the subnet and is not the network or broadcast address. Either way an address is
never given twice (checked here, and enforced by a unique column in the store).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection
from dataclasses import dataclass

from edgefed.core.errors import Conflict, ValidationFailed
from edgefed.core.settings import SiteSettings

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class ManagementNetwork:
    subnet: IpNetwork
    dynamic: bool
    pool_start: IpAddress
    pool_end: IpAddress

    @classmethod
    def from_settings(cls, settings: SiteSettings) -> ManagementNetwork:
        try:
            subnet = ipaddress.ip_network(settings.management_subnet, strict=True)
        except ValueError as exc:
            raise ValidationFailed(
                f"management_subnet {settings.management_subnet!r} is not a network: {exc}",
                field="management_subnet",
            ) from exc
        if settings.management_pool:
            start_text, _, end_text = settings.management_pool.partition("-")
            try:
                start = ipaddress.ip_address(start_text.strip())
                end = ipaddress.ip_address(end_text.strip())
            except ValueError as exc:
                raise ValidationFailed(
                    f"management_pool {settings.management_pool!r} is not 'start-end': {exc}",
                    field="management_pool",
                ) from exc
            if start not in subnet or end not in subnet or int(end) < int(start):
                raise ValidationFailed(
                    "management_pool must be an ascending range inside management_subnet",
                    field="management_pool",
                )
        else:
            # Like StarlingX: the first address is the (floating) gateway; the rest is pool.
            first, last = subnet.network_address + 2, subnet.broadcast_address - 1
            start, end = first, last
        return cls(
            subnet=subnet, dynamic=settings.management_dynamic, pool_start=start, pool_end=end
        )

    @property
    def mode(self) -> str:
        return "dynamic" if self.dynamic else "static"

    def check_static(self, text: str, *, used: Collection[str]) -> str:
        try:
            address = ipaddress.ip_address(text.strip())
        except ValueError as exc:
            raise ValidationFailed(
                f"mgmt_ip {text!r} is not an IP address", field="mgmt_ip"
            ) from exc
        if address not in self.subnet:
            raise ValidationFailed(
                f"mgmt_ip {address} is not in the management network {self.subnet}",
                field="mgmt_ip",
            )
        if self.subnet.num_addresses > 2 and address in (
            self.subnet.network_address,
            self.subnet.broadcast_address,
        ):
            raise ValidationFailed(
                f"mgmt_ip {address} is the network or broadcast address of {self.subnet}",
                field="mgmt_ip",
            )
        if str(address) in used:
            raise Conflict(f"mgmt_ip {address} is already assigned to another host")
        return str(address)

    def allocate(self, *, used: Collection[str]) -> str:
        taken = set(used)
        # Lowest free first; at most len(taken) + 1 steps, however large the pool.
        for number in range(int(self.pool_start), int(self.pool_end) + 1):
            candidate = str(
                ipaddress.ip_address(number)
                if self.subnet.version == 4
                else ipaddress.IPv6Address(number)
            )
            if candidate not in taken:
                return candidate
        raise Conflict(
            f"the management address pool {self.pool_start}-{self.pool_end} is exhausted"
        )

    def assign(self, requested: str | None, *, used: Collection[str]) -> str:
        """The address a new host gets: allocated when dynamic, checked when static."""
        if self.dynamic:
            if requested:
                raise ValidationFailed(
                    "mgmt_ip must not be given: the management network is dynamic, so the "
                    "site allocates addresses from its pool",
                    field="mgmt_ip",
                )
            return self.allocate(used=used)
        if not requested:
            raise ValidationFailed(
                "mgmt_ip is required: the management network is static", field="mgmt_ip"
            )
        return self.check_static(requested, used=used)
