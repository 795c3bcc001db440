"""Compute drivers behind one interface (``base.ComputeDriver``): ``fake`` now, ``qemu`` later.

The compute service decides *what* happens to a server and persists it; a driver only
makes a hypervisor do it. ``load_driver`` is the one place that maps a setting to a
driver class.
"""

from __future__ import annotations

from edgefed.core.errors import ValidationFailed
from edgefed.core.settings import SiteSettings
from edgefed.drivers.base import ComputeDriver
from edgefed.drivers.fake import FakeDriver


def load_driver(settings: SiteSettings) -> ComputeDriver:
    if settings.compute_driver == "fake":
        return FakeDriver(transition_seconds=settings.fake_transition_seconds)
    raise ValidationFailed(
        f"unknown compute driver {settings.compute_driver!r} (known: fake)",
        field="compute_driver",
    )


__all__ = ["ComputeDriver", "FakeDriver", "load_driver"]
