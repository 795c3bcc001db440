"""Compute drivers behind one interface (``base.ComputeDriver``).

``fake`` simulates a hypervisor in the site's process (scale tests, the default);
``qemu`` runs real guests on the site's hosts, each through its host agent
(``agent.AgentDriver`` sends the work over the command channel, ``api.hostcommands``).
The compute service decides *what* happens to a server and persists it; a driver only
makes a hypervisor do it. ``load_driver`` is the one place that maps a setting to a
driver class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgefed.core.errors import ValidationFailed
from edgefed.core.settings import SiteSettings
from edgefed.drivers.base import ComputeDriver
from edgefed.drivers.fake import FakeDriver

if TYPE_CHECKING:
    # Annotations only: the host agent imports this package for ``drivers.qemu`` and
    # would otherwise load the store, and with it SQLAlchemy (≈ 10 MiB), for nothing.
    from edgefed.api.hostcommands import HostCommandQueue
    from edgefed.store.engine import Store

DRIVERS = ("fake", "qemu")


def load_driver(
    settings: SiteSettings, *, store: Store | None = None, queue: HostCommandQueue | None = None
) -> ComputeDriver:
    if settings.compute_driver == "fake":
        return FakeDriver(transition_seconds=settings.fake_transition_seconds)
    if settings.compute_driver == "qemu":
        if store is None or queue is None:
            raise ValidationFailed(
                "the qemu compute driver needs the hosts inventory's command channel "
                "(the inventory service starts before compute)",
                field="compute_driver",
            )
        from edgefed.drivers.agent import AgentDriver, CommandTimeouts
        from edgefed.store.compute import ServerRepository
        from edgefed.store.inventory import InventoryRepository

        return AgentDriver(
            queue=queue,
            servers=ServerRepository(store),
            inventory=InventoryRepository(store),
            timeouts=CommandTimeouts(
                spawn=settings.agent_spawn_timeout_seconds,
                power=settings.agent_command_timeout_seconds,
                query=min(settings.agent_command_timeout_seconds, CommandTimeouts().query),
            ),
        )
    raise ValidationFailed(
        f"unknown compute driver {settings.compute_driver!r} (known: {', '.join(DRIVERS)})",
        field="compute_driver",
    )


__all__ = ["DRIVERS", "ComputeDriver", "FakeDriver", "load_driver"]
