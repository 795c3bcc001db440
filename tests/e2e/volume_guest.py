"""What the volume e2e tests' guests run: user data that watches for new disks."""

from __future__ import annotations

import hashlib
from pathlib import Path

MIB = 1 << 20
BLOCK = 65536
BLOCKS = 16  # 1 MiB


def disk_watcher(mode: str, *, pause: float = 0.2) -> str:
    """User data: in the background, for each disk with a serial the guest has not seen
    yet (a volume: its serial is the volume id), ``write`` 1 MiB of random data first, a
    64 KiB block at a time, each fsync'd and acknowledged on the console as
    ``ACK-<serial>-<block>-<sha256 of the block>``; then print
    ``VOL-<mode>-<serial>-<sha256 of the first MiB>``. ``pause``: seconds between two
    blocks (the window a test has to cut the writes in two)."""
    write = (
        f"    for b in $(seq 0 {BLOCKS - 1}); do\n"
        f"      dd if=/dev/urandom of=$dev bs={BLOCK} count=1 seek=$b conv=fsync,notrunc "
        '2>/dev/null || { echo "EIO-$s-$b"; continue; }\n'
        f'      echo "ACK-$s-$b-$(dd if=$dev bs={BLOCK} count=1 skip=$b 2>/dev/null | '
        'sha256sum | cut -c1-64)"\n'
        f"      sleep {pause}\n"
        "    done\n"
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
        f"{write}"
        f"    sum=$(dd if=$dev bs={BLOCK} count={BLOCKS} 2>/dev/null | sha256sum | cut -c1-64)\n"
        f'    echo "VOL-{mode}-$s-$sum"\n'
        "  done\n"
        "  sleep 1\n"
        "done) > /dev/console 2>&1 &\n"
    )


def acknowledged(console: str, volume_id: str) -> dict[int, str]:
    """The blocks the guest acknowledged writing to the volume: block -> sha256."""
    prefix = f"ACK-{volume_id[:20]}-"
    acks = {}
    for line in console.splitlines():
        if prefix in line:
            block, _, digest = line.split(prefix, 1)[1].partition("-")
            if block.isdigit() and len(digest.strip()) >= 64:
                acks[int(block)] = digest.strip()[:64]
    return acks


def lost_blocks(acks: dict[int, str], volume_file: Path) -> list[int]:
    """The acknowledged blocks whose bytes in the volume's file are not what the guest
    wrote (none, if nothing acknowledged was lost)."""
    lost = []
    with open(volume_file, "rb") as f:
        for block, digest in sorted(acks.items()):
            f.seek(block * BLOCK)
            if hashlib.sha256(f.read(BLOCK)).hexdigest() != digest:
                lost.append(block)
    return lost
