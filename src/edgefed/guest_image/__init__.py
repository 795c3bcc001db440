"""edgefed's tiny bootable guest, built from Debian packages only.

A Debian cloud kernel and a busybox initramfs whose ``/etc/rc`` reads the OpenStack
config drive (hostname, keys, network_data.json, user data), brings up its NICs, serves
a one-line HTTP page and powers off on ACPI; plus a whole-disk qcow2 that boots the same
through syslinux. It reaches userspace in about three seconds under TCG, which is what
lets the QEMU driver's tests, ``make run`` and the benchmarks boot real guests.

``python -m edgefed.guest_image`` (``make guest-image``) builds it into
``.cache/guest-image``; ``build_guest_image`` does the same from code. This package
imports nothing of edgefed: it is a leaf that the testkit, the CLI and benchmarks use.
"""

from edgefed.guest_image.build import KERNEL_CMDLINE, GuestImage, build_guest_image, up_to_date
from edgefed.guest_image.debs import BuildError

__all__ = ["KERNEL_CMDLINE", "BuildError", "GuestImage", "build_guest_image", "up_to_date"]
