"""A site process with the qemu driver and its own host agent, for end-to-end tests
and benchmarks, and the removal of everything it leaves on the host once it stopped.

By design a site's guests outlive its process and its agent (a new agent adopts them),
and so does the site's network on the host: the namespace ``edgefed-<site>`` with its
bridges, taps, dnsmasq servers and nft tables, and its state under
``agent_hostnet_dir``. A test or a benchmark that started a site removes them when it
is done with it: ``remove_qemu_site`` (``qemu_site`` does it on exit). The host network
directory is a fresh one per site (``hostnet_dir_for``), never the shared default
``/run/edgefed/hostnet``, so removing it touches nothing of any other site.
"""

from __future__ import annotations

import asyncio
import fcntl
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edgefed.drivers.hostnet import HostNetSettings, SiteNetwork
from edgefed.drivers.qemu import QemuHypervisor
from edgefed.guest_image import GuestImage, build_guest_image
from edgefed.services.volume.exports import NbdExports
from edgefed.testkit.fleet_process import ProcessFleet
from edgefed.testkit.process import SiteProcess, pid_alive

# How long the local agent may take to exit after its site did (it dies with the site,
# on SIGTERM: PR_SET_PDEATHSIG).
AGENT_EXIT_S = 30.0


def hostnet_dir_for(tag: str) -> Path:
    """The site's host network directory: under /run, not a test's private temporary
    directory, since dnsmasq (running as nobody) must reach it."""
    return Path("/run") / f"edgefed-{tag}"


def qemu_config(
    hostnet_dir: Path, *, accel: str = "tcg", poll_wait: float | None = 5.0, extra: str = ""
) -> str:
    """``site.toml`` lines for a site with the qemu driver and its local agent;
    ``poll_wait`` None keeps the site's default ``agent_poll_wait_seconds``."""
    lines = f'compute_driver = "qemu"\nagent_hostnet_dir = "{hostnet_dir}"\n'
    lines += f'agent_accel = "{accel}"\n'
    if poll_wait is not None:
        lines += f"agent_poll_wait_seconds = {poll_wait}\n"
    return lines + extra


def _agent_pid(agent_dir: Path) -> int | None:
    """The local agent's pid, if its pidfile names a live agent of this site."""
    try:
        pid = int((agent_dir / "agent.pid").read_text().split()[0])
        argv = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid_alive(pid) and str(agent_dir).encode() in argv else None


def built_guest_image(image_dir: Path) -> GuestImage:
    """The tiny guest image in ``image_dir``, built once under a lock beside it (xdist
    workers and concurrent runs share it; a no-op when ``make guest-image`` did it)."""
    image_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(image_dir.parent / "guest-image.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return build_guest_image(image_dir)


def _wait_agent_gone(agent_dir: Path, within: float = AGENT_EXIT_S) -> None:
    """An agent still running would apply its network plan again after the teardown."""
    deadline = time.monotonic() + within
    while _agent_pid(agent_dir) is not None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the host agent of {agent_dir} did not exit")
        time.sleep(0.1)


async def _remove_guests_and_network(site: str, state_dir: Path, hostnet_dir: Path) -> None:
    if state_dir.exists():
        hv = QemuHypervisor(state_dir=state_dir)
        await hv.open()
        for guest_id in hv.guest_ids():
            await hv.destroy(guest_id)
        await hv.close()
    await SiteNetwork(site, settings=HostNetSettings(state_dir=hostnet_dir)).teardown()


def remove_qemu_site(proc: SiteProcess, hostnet_dir: Path) -> None:
    """Stop the site (if it still runs), wait for its agent to exit, then destroy its
    guests, tear down its host network (namespace, bridges, taps, dnsmasq, nft) and
    remove ``hostnet_dir``. Nothing of the site is left running on the host."""
    proc.stop()
    agent_dir = proc.data_dir / "agent"
    _wait_agent_gone(agent_dir)
    asyncio.run(_remove_guests_and_network(proc.name, agent_dir / "qemu", hostnet_dir))
    shutil.rmtree(hostnet_dir, ignore_errors=True)


@contextmanager
def qemu_site(
    name: str,
    tag: str,
    data_dir: Path,
    *,
    extra: str = "",
    accel: str = "tcg",
    poll_wait: float | None = 5.0,
    show_log: bool = True,
) -> Iterator[SiteProcess]:
    """A started site with the qemu driver; everything it made is removed on exit."""
    hostnet_dir = hostnet_dir_for(tag)
    proc = SiteProcess(
        name=name,
        data_dir=data_dir,
        extra_config=qemu_config(hostnet_dir, accel=accel, poll_wait=poll_wait, extra=extra),
    )
    try:
        yield proc.start()
    finally:
        if show_log:
            print(proc.log_tail(80))  # shown when the test failed
        remove_qemu_site(proc, hostnet_dir)


@contextmanager
def qemu_fleet(
    root: Path,
    tag: str,
    qemu: dict[str, str],
    *,
    others: dict[str, str] | None = None,
    show_log: int = 60,
    **fleet_options: Any,
) -> Iterator[ProcessFleet]:
    """A started ``ProcessFleet``: the sites named in ``qemu`` run the qemu driver with
    their own agent and a host network directory of their own, those in ``others`` the
    fake driver (each's value: more ``site.toml`` lines); the first of ``qemu`` enrolls
    the rest. On exit each site's log tail is printed (shown when a test failed), the
    fleet stops (the sites, then the emulator's links), every qemu site's guests and
    host network are removed, and the NBD exports any site left (they outlive their
    site by design)."""
    others = others or {}
    hostnets = {name: hostnet_dir_for(f"{tag}-{i}") for i, name in enumerate(qemu)}
    fleet = ProcessFleet(
        root=root,
        names=[*qemu, *others],
        site_config={name: qemu_config(hostnets[name], extra=extra) for name, extra in qemu.items()}
        | others,
        **fleet_options,
    )
    try:
        yield fleet.start()
    finally:
        for name in fleet.names:
            if name in fleet.sites and show_log:
                print(fleet.sites[name].log_tail(show_log))
        fleet.stop()
        for name, hostnet in hostnets.items():
            if name in fleet.sites:
                remove_qemu_site(fleet.sites[name], hostnet)
        for site in fleet.sites.values():
            exports = site.data_dir / "volumes" / "exports"
            if exports.exists():
                asyncio.run(NbdExports(exports, bind_host="", advertised_host="").close_all())
