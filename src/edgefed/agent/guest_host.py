"""An agent that runs guests: heartbeats in a thread, the command channel on asyncio.

The heartbeat loop (``runner.HostAgent``) is synchronous and enrolls the host first;
once it has a credential, the command channel (``channel.CommandLoop``) runs on an
event loop in the calling thread with the QEMU hypervisor (asynchronous) and the
site's network on this host. ``HostAgent.stop()`` (SIGTERM) ends both; guests keep
running, and the next agent over the same state directory adopts them; when the host
booted meanwhile (``hostboot.BootMarker``, kept next to the guests), it first starts
those its site expects running (``channel.CommandLoop``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from edgefed.agent.channel import ChannelSettings, CommandLoop
from edgefed.agent.guests import GuestRunner
from edgefed.agent.hostboot import BootMarker, read_boot_id
from edgefed.agent.runner import HostAgent
from edgefed.agent.state import AgentState
from edgefed.drivers.base import ImageData, PowerState
from edgefed.drivers.hostnet import HostNetSettings, SiteNetwork
from edgefed.drivers.qemu import QemuHypervisor, QemuSettings

log = logging.getLogger("edgefed.agent")


@dataclass(frozen=True, slots=True)
class GuestHostConfig:
    qemu_state_dir: Path
    # The site's network state on this host (dnsmasq, as nobody, must traverse it);
    # None: guests get no network.
    hostnet_dir: Path | None
    accel: Literal["auto", "kvm", "tcg"] = "auto"
    channel: ChannelSettings = field(default_factory=ChannelSettings)
    # The boot id of this host (hostboot.read_boot_id); tests pass another.
    boot_id: Callable[[], str | None] = read_boot_id
    # False: read no file of the site's data directory even where its path resolves
    # here (images fetched, volumes over NBD), as an agent on another machine does.
    site_files: bool = True


def run_with_guests(
    agent: HostAgent,
    config: GuestHostConfig,
    *,
    on_ready: Callable[[AgentState], None] | None = None,
) -> None:
    """Enroll (or reuse the credential), then heartbeat and run commands until
    ``agent.stop()``; raises what stopped the heartbeat (a refused credential)."""
    enrolled = threading.Event()
    failures: list[BaseException] = []

    def heartbeat() -> None:
        def ready(state: AgentState) -> None:
            enrolled.set()
            if on_ready is not None:
                on_ready(state)

        try:
            agent.run(on_ready=ready)
        except BaseException as exc:
            failures.append(exc)
        finally:
            enrolled.set()
            agent.stop()

    thread = threading.Thread(target=heartbeat, name="agent-heartbeat", daemon=True)
    thread.start()
    enrolled.wait()
    try:
        if not failures:
            asyncio.run(_serve(agent, config))
    finally:
        agent.stop()
        thread.join(timeout=30)
    if failures:
        raise failures[0]


async def _site_name(client: httpx.AsyncClient, site_url: str) -> str:
    for delay in (0.2, 0.5, 1.0, 2.0, 5.0):
        try:
            r = await client.get(f"{site_url}/")
            r.raise_for_status()
            return str(r.json()["site"])
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            log.warning("cannot read the site's name yet (%r)", exc)
            await asyncio.sleep(delay)
    r = await client.get(f"{site_url}/")
    r.raise_for_status()
    return str(r.json()["site"])


async def _serve(agent: HostAgent, config: GuestHostConfig) -> None:
    client = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=5.0))
    commands: list[CommandLoop] = []

    def changed(guest_id: str, power: PowerState) -> None:
        if commands:
            commands[0].guest_changed(guest_id, power)

    hypervisor = QemuHypervisor(
        state_dir=config.qemu_state_dir,
        settings=QemuSettings(accel=config.accel),
        on_change=changed,
    )
    try:
        network = None
        if config.hostnet_dir is not None:
            site = await _site_name(client, agent.site_url)
            network = SiteNetwork(site, settings=HostNetSettings(state_dir=config.hostnet_dir))
        facts = await hypervisor.open()
        log.info("QEMU %s with %s (decided in %.0f ms)", facts.qemu_version, facts.accel,
                 facts.decided_in_ms)  # fmt: skip

        async def sync_network() -> None:
            await commands[0].sync_network()

        async def fetch_image(image: ImageData) -> Path:
            return await commands[0].fetch_image(image, hypervisor.layout.root / "incoming")

        async def export_volume(server_id: str, volume_id: str) -> dict[str, Any]:
            return await commands[0].export_volume(server_id, volume_id)

        loop = CommandLoop(
            site_url=agent.site_url,
            credential=lambda: agent.state.credential if agent.state else "",
            runner=GuestRunner(
                hypervisor,
                network=network,
                sync_network=sync_network,
                fetch_image=fetch_image,
                export_volume=export_volume,
                site_files=config.site_files,
            ),
            network=network,
            client=client,
            settings=config.channel,
            # next to the guests: the boot under which they last ran
            boot=BootMarker(config.qemu_state_dir / "agent-boot-id", boot_id=config.boot_id),
        )
        commands.append(loop)
        watcher = asyncio.create_task(asyncio.to_thread(agent.stopping.wait))
        watcher.add_done_callback(lambda _: loop.stop())
        try:
            await loop.run()
        finally:
            agent.stop()  # releases the watcher's thread if the loop ended first
            await watcher
    finally:
        await hypervisor.close()
        await client.aclose()
