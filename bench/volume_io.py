"""What every mode of ``python -m bench volume`` shares: the I/O suite, the program that
runs it (``volume_io.c``, the same binary in the guest and on the host), the guest's
half (user data that watches for the volume and runs the suite when it appears), the
parsing of what it prints, and the arithmetic of the figures.

A mode (``bench/volume_local.py``, ``bench/volume_remote.py``) attaches a volume to
a real guest, reads the guest's lines from its console, runs its own anchor, and gives
its rounds to ``io_summary`` and ``attach_summary``.

The guest's lines, one per event, on its serial console::

    VOLBENCH armed
    VOLBENCH seen round=1 dev=vdc uptime=31.52
    VOLIO round=1 test=seq-write op=seqwrite bs=1048576 ops=64 bytes=67108864 total_ns=…
    VOLBENCH done round=1
    VOLBENCH gone round=1 uptime=47.90
"""

from __future__ import annotations

import asyncio
import base64
import re
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).resolve().parent / "volume_io.c"
MIB = 1 << 20
REGION = 64 * MIB  # every test stays within the volume's first 64 MiB
HOST_POLL_S = 0.01  # how often the bench reads the guest's console log
TCG_NOTE = (
    "under TCG the guest's side is bound by the CPU emulation (its kernel's block and "
    "virtio code, the interrupts, each system call run as translated code), not by the "
    "virtio device or the file: the ratios show what that path costs on this machine"
)


@dataclass(frozen=True, slots=True)
class IoTest:
    """One pattern of the suite: ``volio OP PATH REGION BS OPS SEED FLAGS``.

    ``qd``: operations in flight (``volio``'s ``qdN``: Linux AIO). ``buffered``: through
    the page cache (the side's ``direct`` dropped); in the guest its caches are dropped
    first, so that a read comes from the volume (the kernel's read-ahead) and a write's
    fsync waits for all of it (the kernel's write-back). ``read_ahead_kb``: what the
    guest sets the disk's ``read_ahead_kb`` to before a buffered read (0: the kernel's
    default for the disk, as the guest found it)."""

    name: str
    op: str
    bs: int
    ops: int  # 0: the region once, in order
    sync: str  # "fsync" (once, at the end), "dsync" (every write), "" (reads)
    label: str
    qd: int = 1
    buffered: bool = False
    read_ahead_kb: int = 0

    @property
    def reads(self) -> bool:
        return self.op in ("seqread", "randread")

    def argv(self, volio: str, path: str, flags: str, seed: int = 1) -> list[str]:
        """The command line; ``flags`` adds the side's own (``direct``, which a buffered
        test leaves out)."""
        own = [f for f in flags.split(",") if f and not (self.buffered and f == "direct")]
        queued = [f"qd{self.qd}"] if self.qd > 1 else []
        both = ",".join([*own, *([self.sync] if self.sync else []), *queued]) or "-"
        return [volio, self.op, path, str(REGION), str(self.bs), str(self.ops), str(seed), both]


SUITE = (
    IoTest("seq-write", "seqwrite", MIB, 0, "fsync", "sequential write, 1 MiB blocks, fsync"),
    IoTest("seq-read", "seqread", MIB, 0, "", "sequential read, 1 MiB blocks"),
    IoTest("rand-write", "randwrite", 4096, 2000, "fsync", "random write, 4 KiB, fsync at end"),
    IoTest("rand-read", "randread", 4096, 2000, "", "random read, 4 KiB"),
    IoTest("sync-write", "randwrite", 4096, 200, "dsync", "random write, 4 KiB, each durable"),
)
# The guest opens the volume O_DIRECT: its own page cache (128 MiB of RAM) neither
# absorbs the writes nor serves the reads, so every operation crosses virtio.
GUEST_FLAGS = "direct"

BUILD_FLAGS = (
    "-Os", "-static", "-nostdlib", "-ffreestanding", "-fno-stack-protector",
    "-fno-asynchronous-unwind-tables", "-fno-pie", "-no-pie", "-Wall", "-Wextra", "-Werror",
    "-Wl,--build-id=none", "-Wl,-z,noseparate-code", "-Wl,-z,norelro", "-s",
)  # fmt: skip


def build_volio(directory: Path) -> Path:
    """Compile ``volume_io.c`` into ``directory/volio`` (a few KiB, no libc)."""
    out = directory / "volio"
    subprocess.run(["gcc", *BUILD_FLAGS, "-o", str(out), str(SOURCE)], check=True)
    return out


def guest_script(serial: str, volio: bytes, suite: tuple[IoTest, ...] = SUITE) -> bytes:
    """User data for the guest: unpack ``volio``, then in the background, each time a
    disk with ``serial`` appears (a volume's serial is its id's first 20 characters):
    print ``seen`` with the guest's uptime, run the suite on it, print ``done``; when
    that disk goes, print ``gone``.

    It waits on the kernel's uevents (busybox ``uevent`` runs a hook for each, which
    passes a disk's add and remove through a FIFO), not on a poll: a shell polling
    /sys/block every 20 ms kept the idle guest's QEMU at 12 % of a core under TCG
    (33 % with busybox's ``sleep``, a fork and an exec each time), on the cores the
    anchor runs on. Idle, it costs nothing; an attach runs the hook for the handful of
    uevents a hot-plugged disk makes."""
    if not re.fullmatch(r"[0-9A-Za-z-]{1,20}", serial):
        raise ValueError(f"not a volume serial: {serial!r}")
    encoded = base64.encodebytes(volio).decode()
    tests = "".join(_guest_test(t) for t in suite)
    script = (
        "#!/bin/sh\n"
        "# python -m bench volume: the guest's half (bench/volume_io.py)\n"
        "base64 -d > /run/volio <<'EOF'\n"
        f"{encoded}"
        "EOF\n"
        "chmod +x /run/volio\n"
        "mkfifo /run/volbench.events\n"
        "cat > /run/volbench.hook <<'EOF'\n"
        "#!/bin/sh\n"
        '[ "$SUBSYSTEM/$DEVTYPE" = block/disk ] && echo "$ACTION $DEVNAME" > /run/volbench.events\n'
        "EOF\n"
        "chmod +x /run/volbench.hook\n"
        "(exec 3<> /run/volbench.events\n"
        "uevent /run/volbench.hook &\n"
        'echo "VOLBENCH armed"\n'
        "r=0; dev=''\n"
        "while read -r action name <&3; do\n"
        '  case "$action" in\n'
        "  add)\n"
        "    s=''; { read -r s < /sys/block/$name/serial; } 2>/dev/null\n"
        f'    [ "$s" = "{serial}" ] || continue\n'
        "    dev=$name; r=$((r+1)); read -r up rest < /proc/uptime\n"
        '    echo "VOLBENCH seen round=$r dev=$dev uptime=$up"\n'
        "    q=/sys/block/$dev/queue; read -r ra0 < $q/read_ahead_kb\n"
        '    echo "VOLBENCH queue round=$r read_ahead_kb=$ra0'
        " max_sectors_kb=$(cat $q/max_sectors_kb) max_hw_sectors_kb=$(cat $q/max_hw_sectors_kb)"
        " nr_requests=$(cat $q/nr_requests) scheduler=$(tr ' ' , < $q/scheduler)"
        " dirty_ratio=$(cat /proc/sys/vm/dirty_ratio)"
        " dirty_background_ratio=$(cat /proc/sys/vm/dirty_background_ratio)"
        " mem_available_kb=$(awk '/^MemAvailable/ {print $2}' /proc/meminfo)\"\n"
        f"{tests}"
        '    echo "VOLBENCH done round=$r";;\n'
        "  remove)\n"
        '    [ -n "$dev" ] && [ "$name" = "$dev" ] || continue\n'
        "    dev=''; read -r up rest < /proc/uptime\n"
        '    echo "VOLBENCH gone round=$r uptime=$up";;\n'
        "  esac\n"
        "done) > /dev/console 2>&1 &\n"
    )
    return script.encode()


def _guest_test(test: IoTest) -> str:
    """The watcher's lines for one test: a buffered one drops the guest's caches first
    (and a read sets the disk's read-ahead); then ``volio``'s line, prefixed."""
    lines = ""
    extra = ""
    if test.buffered:
        lines += "    sync; echo 3 > /proc/sys/vm/drop_caches; blockdev --flushbufs /dev/$dev\n"
        if test.reads:
            lines += f"    echo {test.read_ahead_kb or '$ra0'} > $q/read_ahead_kb\n"
            extra = " ra_kb=$(cat $q/read_ahead_kb)"
    argv = " ".join(test.argv("/run/volio", "/dev/$dev", GUEST_FLAGS))
    return lines + f'    echo "VOLIO round=$r test={test.name}{extra} $({argv} 2>&1)"\n'


def parse_fields(text: str) -> dict[str, str]:
    """``key=value`` words of a line; words without ``=`` are skipped."""
    return dict(word.split("=", 1) for word in text.split() if "=" in word)


class GuestError(RuntimeError):
    """The guest's suite failed: a ``volio`` line with ``error=``."""


def parse_round(console: str, round_no: int) -> dict[str, dict[str, int]]:
    """The ``VOLIO`` lines of one round, by test name: their numeric fields."""
    found: dict[str, dict[str, int]] = {}
    for line in console.splitlines():
        start = line.find("VOLIO ")
        if start < 0:
            continue
        fields = parse_fields(line[start + len("VOLIO ") :])
        if fields.get("round") != str(round_no):
            continue
        if "error" in fields:
            raise GuestError(f"the guest's {fields.get('test')} failed: {line[start:].strip()}")
        found[fields["test"]] = {k: int(v) for k, v in fields.items() if v.isdigit()}
    return found


def parse_queue(console: str, round_no: int) -> dict[str, str]:
    """The guest's ``VOLBENCH queue`` line of one round: the disk's queue settings as
    the guest found them (read-ahead, request sizes and count, scheduler) and its
    write-back thresholds and memory; empty if it did not print one."""
    for line in console.splitlines():
        start = line.find("VOLBENCH queue ")
        if start >= 0:
            fields = parse_fields(line[start + len("VOLBENCH queue ") :])
            if fields.pop("round", None) == str(round_no):
                return fields
    return {}


def parse_volio(line: str) -> dict[str, int]:
    """One ``volio`` line run on the host; raises on ``error=``."""
    fields = parse_fields(line)
    if "error" in fields or "total_ns" not in fields:
        raise RuntimeError(f"volio failed: {line.strip()}")
    return {k: int(v) for k, v in fields.items() if v.isdigit()}


def figures(raw: dict[str, int]) -> dict[str, float]:
    """Throughput (MiB/s, operations/s; the final fsync counted) and latency per
    operation (µs) of one ``volio`` result."""
    seconds = raw["total_ns"] / 1e9
    return {
        "mib_s": round(raw["bytes"] / MIB / seconds, 2),
        "iops": round(raw["ops"] / seconds, 1),
        "p50_us": round(raw["p50_ns"] / 1000, 1),
        "p99_us": round(raw["p99_ns"] / 1000, 1),
        "mean_us": round(raw["mean_ns"] / 1000, 1),
        "max_us": round(raw["max_ns"] / 1000, 1),
        "sync_ms": round(raw["sync_ns"] / 1e6, 2),
        "total_s": round(seconds, 4),
    }


async def run_volio(argv: list[str]) -> dict[str, int]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    return parse_volio(out.decode(errors="replace"))


async def host_suite(
    volio: Path, path: Path, flags: str, suite: tuple[IoTest, ...] = SUITE
) -> dict[str, dict[str, int]]:
    """The suite run on the host against ``path`` (a volume's file), one test after the
    other, as the guest runs it."""
    return {t.name: await run_volio(t.argv(str(volio), str(path), flags)) for t in suite}


def _rate(raw: dict[str, int]) -> float:
    """Bytes per nanosecond, unrounded: a ratio of 4 KiB tests' MiB/s rounded to two
    decimals (0.07 against 0.08) would be off by a tenth."""
    return raw["bytes"] / raw["total_ns"]


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def io_summary(
    anchor: list[dict[str, dict[str, int]]],
    guest: list[dict[str, dict[str, int]]],
    suite: tuple[IoTest, ...] = SUITE,
) -> dict[str, Any]:
    """Per test, over the rounds (anchor round i paired with guest round i): each side's
    median figures, and the medians of the pairs' ratios: throughput guest ÷ anchor
    (1.0: as fast as the anchor) and p50 latency guest ÷ anchor, with the p50
    difference in µs (what the guest's path adds to one operation)."""
    out: dict[str, Any] = {}
    raw = list(zip(anchor, guest, strict=True))
    for test in suite:
        pairs = [(figures(a[test.name]), figures(g[test.name])) for a, g in raw]
        if not pairs:
            continue
        sides = {
            side: {
                key: round(_median([p[i][key] for p in pairs]), 2)
                for key in ("mib_s", "iops", "p50_us", "p99_us", "mean_us")
            }
            for i, side in enumerate(("anchor", "guest"))
        }
        out[test.name] = {
            **sides,
            "label": test.label,
            "throughput_ratio": round(
                _median([_rate(g[test.name]) / _rate(a[test.name]) for a, g in raw]), 4
            ),
            "latency_ratio": round(
                _median([g["p50_us"] / max(a["p50_us"], 0.1) for a, g in pairs]), 1
            ),
            "added_p50_us": round(_median([g["p50_us"] - a["p50_us"] for a, g in pairs]), 1),
        }
    return out


def attach_summary(cycles: list[dict[str, float]], goal_s: float) -> dict[str, Any]:
    """Medians and best of each attach and detach milestone (seconds from the request),
    and the verdict: the guest sees the disk within ``goal_s`` (median)."""
    keys = sorted({k for c in cycles for k in c})
    out: dict[str, Any] = {
        key: {
            "median_s": round(_median([c[key] for c in cycles if key in c]), 3),
            "best_s": round(min(c[key] for c in cycles if key in c), 3),
            "worst_s": round(max(c[key] for c in cycles if key in c), 3),
        }
        for key in keys
    }
    seen = out.get("attach_guest_seen", {}).get("median_s", float("inf"))
    out["verdict"] = "PASS" if seen < goal_s else "MISS"
    return out
