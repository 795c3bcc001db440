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
        on_start=monitor.start,
        on_stop=monitor.stop,
        tags=("inventory",),
    )
