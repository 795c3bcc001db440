"""A site process with the qemu driver and its own agent, for the real-guest e2e tests,
and the cleanup that removes its guests and host network after it stopped
(``edgefed.testkit.qemu_site``, which the benchmarks share)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgefed.guest_image import GuestImage
from edgefed.testkit import qemu_site as kit
from edgefed.testkit.process import SiteProcess

REPO = Path(__file__).resolve().parents[2]
IMAGE_DIR = REPO / ".cache" / "guest-image"
# What a site with real guests needs on this host (besides root and /dev/net/tun).
GUEST_TOOLS = ("ip", "nft", "dnsmasq", "busybox", "qemu-system-x86_64", "qemu-img")


def host_ready(tools: tuple[str, ...] = GUEST_TOOLS) -> bool:
    """Root, ``tools`` on the PATH and /dev/net/tun: what the real-guest tests need."""
    return (
        os.geteuid() == 0
        and all(shutil.which(t) for t in tools)
        and os.access("/dev/net/tun", os.R_OK | os.W_OK)
    )


def built_guest_image() -> GuestImage:
    """The tiny guest image, built once under a lock (xdist workers share it)."""
    return kit.built_guest_image(IMAGE_DIR)


@contextmanager
def qemu_site(name: str, tag: str, data_dir: Path, *, extra: str = "") -> Iterator[SiteProcess]:
    # The host network's state in /run/edgefed-test-<tag>; the agent polls for 5 s at most.
    with kit.qemu_site(name, f"test-{tag}", data_dir, extra=extra) as proc:
        yield proc
