"""Fixtures of the QEMU driver's tests: the tiny guest image and state directories.

Tests that run QEMU are skipped, saying why, only where it is not installed; ``make
test`` installs it (system-deps) and builds the guest image (guest-image), so in CI
they run. The image is built here too when missing (apt-get download), under a lock
so that xdist workers do not build it twice.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from qemu_support import NETNS_TAP

from edgefed.guest_image import GuestImage
from edgefed.testkit.qemu_site import built_guest_image

REPO = Path(__file__).resolve().parents[4]
IMAGE_DIR = REPO / ".cache" / "guest-image"


@pytest.fixture(scope="session")
def guest_image() -> GuestImage:
    """The tiny guest, built once (a no-op when ``make guest-image`` already did)."""
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 is not installed (make system-deps installs it)")
    return built_guest_image(IMAGE_DIR)


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    """A hypervisor's state directory; the test fails if a guest's QEMU still runs there."""
    path = tmp_path / "qemu-state"
    yield path
    leftovers = list((path / "guests").glob("*/qemu.pid")) if path.exists() else []
    assert not leftovers, f"guests left behind: {leftovers}"


@pytest.fixture
def netns() -> Iterator[str]:
    """A network namespace with one tap (192.0.2.1/24): the guest's only peer."""
    name = f"efq-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for command in (
            ["ip", "-n", name, "link", "set", "lo", "up"],
            ["ip", "-n", name, "tuntap", "add", "dev", NETNS_TAP, "mode", "tap"],
            ["ip", "-n", name, "addr", "add", "192.0.2.1/24", "dev", NETNS_TAP],
            ["ip", "-n", name, "link", "set", NETNS_TAP, "up"],
        ):
            subprocess.run(command, check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=True)
