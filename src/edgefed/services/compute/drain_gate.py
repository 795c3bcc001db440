"""A site being drained (drain.py) takes no new server."""

from __future__ import annotations

from edgefed.core.errors import Conflict
from edgefed.services.compute.state import ComputeState
from edgefed.store.compute import Drains


async def refuse_new_servers(state: ComputeState) -> None:
    """A draining site takes no new server (a create's 409)."""
    drain = await Drains(state.ctx.store).active()
    if drain is not None:
        raise Conflict(
            f"Site {state.ctx.name} is being drained (to {drain.targets}): it takes no new "
            "servers until it is undrained."
        )
