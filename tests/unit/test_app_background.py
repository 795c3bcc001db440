"""A site's background loops run while it serves and are all gone once it stops.

The app runs what each ServiceSpec declares in ``background`` after that service's
``on_start`` and cancels it before its ``on_stop`` (app.py)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from edgefed.app import STOP_TIMEOUT
from edgefed.services.fleet.monitor import HealthMonitor
from edgefed.testkit.inprocess import run_site, site_settings

LOOPS = {"sites:gossip", "fleet:watch_health", "inventory:sweep_silent_hosts"}


def site_loops() -> dict[str, asyncio.Task[object]]:
    return {t.get_name(): t for t in asyncio.all_tasks() if t.get_name() in LOOPS}


async def test_background_loops_run_while_the_site_serves_and_stop_with_it(
    tmp_path: Path,
) -> None:
    async with run_site(site_settings(tmp_path)) as site:
        running = site_loops()
        assert set(running) == LOOPS
        assert not any(t.done() for t in running.values())
        # Started after its service's on_start: the monitor it runs is in place.
        assert site.app.state.ctx.slots.get(HealthMonitor) is not None
        stopping = time.monotonic()
    # Cancelled, not left to run into the stop timeout.
    assert time.monotonic() - stopping < STOP_TIMEOUT
    assert all(t.done() for t in running.values())
    assert site_loops() == {}
