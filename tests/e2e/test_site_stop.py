"""A site with the qemu driver stops its own host agent when it is stopped (SIGTERM),
before it exits: uvicorn raises the signal it caught again after its shutdown, and
that must not end the process before the cleanup ran."""

from __future__ import annotations

import os
import shutil

import pytest

from edgefed.testkit.qemu_site import qemu_site

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("qemu-system-x86_64") is None,
        reason="needs root and QEMU",
    ),
]


def test_a_stopped_site_stops_its_agent_first(tmp_path):
    tag = f"stop{os.getpid()}"
    with qemu_site(f"S{tag}", f"test-{tag}", tmp_path / "site", show_log=False) as proc:
        proc.stop()
        log = proc.log_tail(40)
    assert "stopped the local host agent" in log
