"""Whether this host booted since its guests last ran: ``BootMarker``.

Linux gives each boot a random id (``/proc/sys/kernel/random/boot_id``). The agent
keeps the id of the boot under which it last settled its guests in a file next to
them; a different id (or none: the guests' state directory is new to this boot's
agent) means the host booted since, so guests whose QEMU is gone did not power off
by themselves: their host stopped under them. Only then does the agent ask its site
which guests it expects running (as Nova's ``resume_guests_state_on_host_boot``); an
agent that merely restarted leaves a guest that powered off meanwhile off.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def read_boot_id() -> str | None:
    try:
        return BOOT_ID.read_text().strip() or None
    except OSError:
        return None


class BootMarker:
    def __init__(self, path: Path, *, boot_id: Callable[[], str | None] = read_boot_id) -> None:
        self.path = path
        self.boot_id = boot_id

    def _saved(self) -> str | None:
        with contextlib.suppress(OSError):
            return self.path.read_text().strip() or None
        return None

    def booted(self) -> bool:
        """Whether the host booted since ``settle()`` was last called here (True when
        it never was, or when this system gives no boot id)."""
        current = self.boot_id()
        return current is None or current != self._saved()

    def settle(self) -> None:
        """The guests are as this boot wants them: remember this boot."""
        current = self.boot_id()
        if current is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f"{self.path.name}.{os.getpid()}")
        partial.write_text(current + "\n")
        partial.replace(self.path)
