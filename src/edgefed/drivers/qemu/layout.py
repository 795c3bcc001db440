"""Where the hypervisor keeps things: one state directory, one directory per guest.

    <state>/accel.json                  the KVM probe's answer for this boot (accel.py)
    <state>/images/<algo>-<digest>      cached base images (read-only) and their facts
    <state>/images/ephemeral-<N>G.ext4  formatted bases of ephemeral and swap disks
    <state>/snapshots/                  snapshots waiting for the caller to upload them
    <state>/guests/<uuid>/              one guest, everything it owns (GuestFiles)

A unix socket's path is at most 107 bytes (``sun_path``), and a state directory can be
deep (pytest's temporary directories are). When ``guests/<uuid>/<its longest socket>``
(an NBD relay's, ``relay.py``) would not fit, the sockets are reached through a short symbolic link,
``/tmp/edgefed-qemu-<12 hex of the state path>`` → ``<state>/guests``, made again
whenever it is missing (it is derived from the path, so a restarted agent finds it):
the sockets themselves stay in the guest's directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

SUN_PATH_MAX = 107
UUID_LENGTH = 36
LONGEST_SOCKET = "nbd-0123456789ab.sock"  # an NBD relay's (relay.py); then serial.sock


@dataclass(frozen=True, slots=True)
class GuestFiles:
    """The files of one guest; ``sockets`` is its directory or the short alias of it."""

    directory: Path
    sockets: Path

    @property
    def record(self) -> Path:  # what was launched (GuestRecord), re-read on adoption
        return self.directory / "guest.json"

    @property
    def root_disk(self) -> Path:
        return self.directory / "disk.qcow2"

    @property
    def ephemeral_disk(self) -> Path:
        return self.directory / "ephemeral.qcow2"

    @property
    def swap_disk(self) -> Path:
        return self.directory / "swap.qcow2"

    @property
    def config_drive(self) -> Path:
        return self.directory / "config.iso"

    @property
    def pidfile(self) -> Path:
        return self.directory / "qemu.pid"

    @property
    def qmp_socket(self) -> Path:
        return self.sockets / "qmp.sock"

    @property
    def serial_socket(self) -> Path:
        return self.sockets / "serial.sock"

    @property
    def console_log(self) -> Path:
        return self.directory / "console.log"

    @property
    def qemu_log(self) -> Path:  # QEMU's own messages while it starts
        return self.directory / "qemu.log"

    @property
    def suspend_state(self) -> Path:  # the migration stream of a suspended guest
        return self.directory / "suspend.state"


class StateLayout:
    """The state directory's paths; makes the directories and the socket alias."""

    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir.resolve()
        self.images = self.root / "images"
        self.snapshots = self.root / "snapshots"
        self.guests = self.root / "guests"
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:12]
        self.alias = Path(tempfile.gettempdir()) / f"edgefed-qemu-{digest}"

    @property
    def needs_alias(self) -> bool:
        longest = len(str(self.guests)) + 1 + UUID_LENGTH + 1 + len(LONGEST_SOCKET)
        return longest > SUN_PATH_MAX

    def prepare(self) -> None:
        for directory in (self.root, self.images, self.snapshots, self.guests):
            directory.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)  # config drives and consoles are the tenants' data
        if self.needs_alias:
            self._link_alias()

    def _link_alias(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            if os.readlink(self.alias) == str(self.guests):
                return
            self.alias.unlink()
        partial = self.alias.with_name(f"{self.alias.name}.{os.getpid()}")
        partial.unlink(missing_ok=True)
        partial.symlink_to(self.guests, target_is_directory=True)
        partial.replace(self.alias)

    def remove_alias(self) -> None:
        """Drop the alias once no guest is left (a running guest's sockets need it)."""
        if self.needs_alias and not any(self.guests.iterdir()):
            with contextlib.suppress(FileNotFoundError):
                self.alias.unlink()

    def guest(self, guest_id: str) -> GuestFiles:
        directory = self.guests / guest_id
        sockets = self.alias / guest_id if self.needs_alias else directory
        return GuestFiles(directory=directory, sockets=sockets)

    def guest_ids(self) -> list[str]:
        try:
            return sorted(p.name for p in self.guests.iterdir() if (p / "guest.json").exists())
        except FileNotFoundError:
            return []
