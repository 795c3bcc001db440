"""What the volume e2e tests' guests run: user data that watches for new disks."""

from __future__ import annotations

MIB = 1 << 20


def disk_watcher(mode: str) -> str:
    """User data: in the background, for each disk with a serial the guest has not seen
    yet (a volume: its serial is the volume id), ``write`` 1 MiB of random data with
    fsync first, then print ``VOL-<mode>-<serial>-<sha256 of its first MiB>``."""
    write = (
        "dd if=/dev/urandom of=$dev bs=65536 count=16 conv=fsync 2>/dev/null; sync\n"
        if mode == "write"
        else ""
    )
    return (
        "#!/bin/sh\n"
        "(seen=' '\n"
        "for i in $(seq 900); do\n"
        "  for d in /sys/block/vd*; do\n"
        '    s=$(cat $d/serial 2>/dev/null); [ -n "$s" ] || continue\n'
        '    case "$seen" in *" $s "*) continue;; esac\n'
        '    seen="$seen$s "; dev=/dev/${d##*/}\n'
        f"    {write}"
        "    sum=$(dd if=$dev bs=65536 count=16 2>/dev/null | sha256sum | cut -c1-64)\n"
        f'    echo "VOL-{mode}-$s-$sum"\n'
        "  done\n"
        "  sleep 1\n"
        "done) > /dev/console 2>&1 &\n"
    )
