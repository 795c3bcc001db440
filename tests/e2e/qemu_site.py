"""A site process with the qemu driver and its own agent, for the real-guest e2e tests,
and the cleanup that removes its guests and host network after it stopped
(``edgefed.testkit.qemu_site``, which the benchmarks share)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgefed.testkit import qemu_site as kit
from edgefed.testkit.process import SiteProcess


@contextmanager
def qemu_site(name: str, tag: str, data_dir: Path, *, extra: str = "") -> Iterator[SiteProcess]:
    # The host network's state in /run/edgefed-test-<tag>; the agent polls for 5 s at most.
    with kit.qemu_site(name, f"test-{tag}", data_dir, extra=extra) as proc:
        yield proc
