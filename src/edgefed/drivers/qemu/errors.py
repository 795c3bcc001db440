"""What can go wrong between edgefed and QEMU, as one tree under ``DriverError``.

The compute service already turns a ``DriverError`` into a server fault; the classes
below let it (or the host agent in between) say more: an ``ImageRefused`` is the user's
input (a 400 at boot, or a fault naming the cause), an ``InvalidGuestState`` a 409, a
``GuestNotFound`` a 404, the rest are the host's trouble. Foreign errors (``OSError``,
a subprocess's failure, QMP's ``{"error": …}``) are translated where they happen.

    DriverError (edgefed.drivers.base)
    └── QemuError
        ├── ImageRefused         the image cannot run here: format, backing or data file,
        │                        larger than the flavor's root disk, unreadable
        ├── GuestNotFound        no guest with that id in the state directory
        ├── InvalidGuestState    the guest's power state forbids the operation
        ├── LaunchFailed         qemu-system exited before the guest ran (its stderr)
        ├── ToolFailed           qemu-img or another host tool failed
        └── QmpError             QEMU answered a command with an error
            ├── QmpTimeout       no answer (or event) within the bound
            └── QmpDisconnected  the monitor connection closed (QEMU exited)
"""

from __future__ import annotations

from edgefed.drivers.base import DriverError


class QemuError(DriverError):
    """Base of every error of the QEMU driver."""


class ImageRefused(QemuError):
    """The image cannot run on this host; ``reason`` is a short, stable cause."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class GuestNotFound(QemuError):
    def __init__(self, guest_id: str) -> None:
        super().__init__(f"guest {guest_id} is not known to this hypervisor")
        self.guest_id = guest_id


class InvalidGuestState(QemuError):
    def __init__(self, guest_id: str, operation: str, state: str) -> None:
        super().__init__(f"cannot {operation} guest {guest_id} while it is {state}")
        self.guest_id = guest_id
        self.operation = operation
        self.state = state


class LaunchFailed(QemuError):
    """qemu-system did not start the guest; the message ends with its stderr."""


class ToolFailed(QemuError):
    """A host tool (qemu-img, ip) failed or is missing."""


class QmpError(QemuError):
    """QEMU refused a command: ``error_class`` is QMP's class (``GenericError``, …)."""

    def __init__(self, message: str, *, error_class: str = "") -> None:
        super().__init__(message)
        self.error_class = error_class


class QmpTimeout(QmpError):
    pass


class QmpDisconnected(QmpError):
    pass
