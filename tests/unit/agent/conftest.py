"""Fixtures of the agent tests (helpers live in agent_qemu_support, imported by name)."""

from __future__ import annotations

import pytest
from agent_qemu_support import IMAGE_DIR

from edgefed.guest_image import GuestImage
from edgefed.testkit.qemu_site import built_guest_image


@pytest.fixture(scope="module")
def guest_image() -> GuestImage:
    """The tiny guest image, built once beside the repository (a no-op once built)."""
    return built_guest_image(IMAGE_DIR)
