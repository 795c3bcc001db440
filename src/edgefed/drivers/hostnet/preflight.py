"""What a host needs before it can wire a site, checked at start with a clear error.

Failing later would be worse: a missing ``dnsmasq`` shows as guests without
addresses, a kernel without ``br_netfilter`` as security groups that silently let
everything through (bridged frames would never reach the ``inet`` hooks). So the
agent calls ``SiteNetwork.start()`` first, and each missing piece is named with the
Debian package or the module that brings it.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from edgefed.drivers.hostnet.devices import Devices
from edgefed.drivers.hostnet.errors import HostNetError

# The tools the library runs, and the Debian packages that bring them.
TOOLS = {"ip": "iproute2", "nft": "nftables", "dnsmasq": "dnsmasq-base", "sysctl": "procps"}
TUN = "/dev/net/tun"
BRIDGE_NF = "/proc/sys/net/bridge/bridge-nf-call-iptables"


def check_tools(*, dnsmasq: str = "dnsmasq") -> None:
    """Every tool on PATH and the tun device usable, or one error naming all that lack."""
    binaries = {name: dnsmasq if name == "dnsmasq" else name for name in TOOLS}
    missing = [
        f"{binaries[name]} (Debian package {package})"
        for name, package in TOOLS.items()
        if shutil.which(binaries[name]) is None
    ]
    if missing:
        raise HostNetError("check the host's tools", "missing: " + ", ".join(missing))
    if not os.access(TUN, os.R_OK | os.W_OK):
        raise HostNetError("check the host's tools", f"{TUN} is missing or not usable (taps)")


async def check_namespace(devices: Devices) -> None:
    """Bridged IPv4 goes through the inet hooks in the site's namespace (br_netfilter)."""
    value = await devices.read_proc(BRIDGE_NF)
    step = f"check br_netfilter in {devices.netns}"
    if value is None:
        raise HostNetError(
            step,
            f"{BRIDGE_NF} is missing: load br_netfilter (modprobe br_netfilter), or "
            "security groups cannot see bridged traffic",
        )
    if value != "1":
        raise HostNetError(step, f"{BRIDGE_NF} is {value}, and could not be set to 1")


def check_state_dir(directory: Path) -> None:
    """dnsmasq drops its privileges (to ``nobody``) before it reads its hosts file, so
    every directory down to the site's must let others through (``o+x``)."""
    step = f"check the state directory {directory}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o755)
        closed = [d for d in (directory, *directory.parents) if not d.stat().st_mode & stat.S_IXOTH]
    except OSError as exc:
        raise HostNetError(step, str(exc)) from exc
    if closed:
        raise HostNetError(
            step,
            f"dnsmasq runs as nobody and cannot pass {closed[-1]} "
            f"(mode {stat.S_IMODE(closed[-1].stat().st_mode):o}): choose a state_dir "
            "others may traverse, such as /var/lib/edgefed/hostnet",
        )
