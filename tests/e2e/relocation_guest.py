"""What the real-guest relocation tests share: a guest whose user data writes a file
of known content onto its boot disk at its first boot and reads it back at the next
ones, and where a guest's QEMU process runs."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from edgefed.testkit.process import SiteProcess, qemu_processes
from edgefed.testkit.wait import until

MARKER = "/boot/relocation-marker"  # on the boot disk (vfat): it persists, and moves
MARKER_TEXT = "".join(f"{i} edgefed relocation marker\n" for i in range(1, 4001))
MARKER_SHA = hashlib.sha256(MARKER_TEXT.encode()).hexdigest()

# At every boot: the marker's sha256 if the disk has it, else write it (same text as
# MARKER_TEXT), sync, and say so.
USER_DATA = (
    "#!/bin/sh\n"
    f"if [ -f {MARKER} ]; then\n"
    f'  echo "MARKER-FOUND-$(sha256sum {MARKER} | cut -c1-64)"\n'
    "else\n"
    f'  for i in $(seq 1 4000); do echo "$i edgefed relocation marker"; done > {MARKER}\n'
    "  sync\n"
    f'  echo "MARKER-WROTE-$(sha256sum {MARKER} | cut -c1-64)"\n'
    "fi\n"
)


def qemu_pid(site: SiteProcess, server_id: str) -> int | None:
    """The QEMU process running the guest at ``site`` (its -uuid, and its files under
    the site's data directory: both sites run a QEMU with that uuid, one after the
    other), or None."""
    for pid, argv in qemu_processes():
        if server_id.encode() in argv and any(str(site.data_dir).encode() in a for a in argv):
            return pid
    return None


def until_value(check: Callable[[], Any], *, within: float, what: str, every: float = 0.2) -> Any:
    """``until``, returning what ``check`` found."""
    found: list[Any] = []

    def probe() -> bool:
        value = check()
        if value:
            found.append(value)
        return bool(value)

    until(probe, within=within, every=every, what=what)
    return found[-1]
