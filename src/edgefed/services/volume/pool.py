"""The site's volume pool: how large it is, what its volumes are sized to, and whether
a new volume (or an extend) still fits.

Volumes are sparse files: a new volume takes no space until written, so the pool is
thinly provisioned, as Cinder's drivers are with ``max_over_subscription_ratio``: the
volumes' sizes may add up to ``volume_over_subscription_ratio`` times the storage's
size (20 by default, Cinder's), and a create or extend beyond that is refused with a
400 naming the figures. The figures are what fleet status and telemetry show.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgefed.api.context import SiteContext
from edgefed.services.volume.cinder import invalid_input
from edgefed.services.volume.state import VolumeState
from edgefed.store.volume import Volumes

GIB = 1 << 30


@dataclass(frozen=True, slots=True)
class PoolFigures:
    total_gb: float  # the storage holding the volumes
    free_gb: float
    allocated_gb: int  # what the volumes are sized to
    volumes: int
    ratio: float

    @property
    def capacity_gb(self) -> float:
        """What the volumes' sizes may add up to."""
        return self.total_gb * self.ratio


async def figures(ctx: SiteContext) -> PoolFigures:
    total, free = ctx.slots.require(VolumeState).backend.space()
    allocated, count = await Volumes(ctx.store).allocated_gb()
    return PoolFigures(
        total_gb=round(total / GIB, 1),
        free_gb=round(free / GIB, 1),
        allocated_gb=allocated,
        volumes=count,
        ratio=ctx.settings.volume_over_subscription_ratio,
    )


async def check_room(ctx: SiteContext, more_gb: int) -> None:
    """400 when ``more_gb`` more (0: the volumes as recorded) does not fit the pool."""
    pool = await figures(ctx)
    if pool.allocated_gb + more_gb > pool.capacity_gb:
        asked = f"{more_gb} GB more" if more_gb else "the new volume"
        raise invalid_input(
            f"There is not enough capacity in the volume pool of site {ctx.name} for "
            f"{asked}: {pool.allocated_gb + more_gb} GB would be allocated of "
            f"{pool.capacity_gb:.0f} GB ({pool.total_gb:.0f} GB of storage x "
            f"{pool.ratio:g}, the over-subscription ratio)."
        )
