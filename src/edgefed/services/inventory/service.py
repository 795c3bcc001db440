"""The hosts inventory service: hosts, personalities, host agents (``/edge/v1/hosts``)."""

from __future__ import annotations

from edgefed.api.service import ServiceSpec
from edgefed.services.inventory import monitor
from edgefed.services.inventory.routes import router


def build() -> ServiceSpec:
    return ServiceSpec(
        name="inventory",
        prefix="/edge/v1/hosts",
        router=router,
        background=(monitor.sweep_silent_hosts,),
        tags=("inventory",),
    )
