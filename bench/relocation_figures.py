"""``python -m bench relocation``'s pure half: the guest's user data, the arithmetic of
a move's timeline against the link's copy, and the table (``bench/relocation.py``
runs the sites, the guest and the move).

A move is observed from the bench (every ``POLL_S``), each time in seconds from the
moment the bench sent the ``os-edge:relocate`` action:

- the source's journal (``compute_relocations``, direction ``out``): when each phase
  was first seen, and each change of ``done_bytes`` (acknowledged chunks; answers
  that come within one poll show as one change);
- the source's QEMU process: when it was gone (the guest stopped there: the start of
  the *downtime*, which ends when the destination's server is ACTIVE; the guest's
  shutdown before it, from the ``stopping`` phase, is shown apart);
- the destination's server row: when it was ACTIVE (``vm_state`` active, no task);
- the destination's console log: its first line, and the user data's line saying the
  moved disk holds what the guest wrote at the source.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

MIB = 1 << 20
USED_MIB = 200  # what the guest writes on its disk before it moves
WRITE_AT_MIB = 64  # where on its disk: past the boot partition (~20 MiB)
TOTAL_GOAL = 1.2  # total relocation time ÷ the raw copy of the same bytes
DOWNTIME_GOAL = 0.10  # a mild move's downtime ÷ a cold one's
MARK = "RELOCBENCH"
NOT_THERE_YET = (
    "live relocation between sites (memory and all, no reboot) does not exist yet "
    "(docs/relocation.md): no figures for it"
)


def user_data(used_mib: int = USED_MIB, at_mib: int = WRITE_AT_MIB) -> bytes:
    """The guest's script, run at every boot (``/etc/rc``): the first time, ``used_mib``
    MiB of random data onto its root disk at ``at_mib`` MiB, synced, and a marker file
    on its boot partition holding the written data's first MiB's sha256 (16 hex);
    at a later boot (after the move), that sha256 and the one read back from the disk.

    The tiny guest's root file system is its initramfs, in RAM: the data goes to the
    disk itself, past its boot partition (the driver made the disk the flavor's 1 GiB),
    which the export then carries as allocated clusters, as it would a file's."""
    first_mib = (
        f"dd if=/dev/vda bs=1048576 skip={at_mib} count=1 2>/dev/null | sha256sum | cut -c1-16"
    )
    return (
        "#!/bin/sh\n"
        f"M=/boot/{MARK.lower()}\n"
        "up() { cut -d' ' -f1 /proc/uptime; }\n"
        'if [ -f "$M" ]; then\n'
        f'  echo "{MARK} found $(cat $M) read=$({first_mib}) t=$(up)"\n'
        "else\n"
        "  t=$(up)\n"
        f"  dd if=/dev/urandom of=/dev/vda bs=1048576 seek={at_mib} count={used_mib} "
        "conv=fsync 2>/dev/null\n"
        "  sync\n"
        f'  h=$({first_mib}); echo "$h" > "$M"; sync\n'
        f'  echo "{MARK} wrote $h mib={used_mib} from=$t t=$(up)"\n'
        "fi\n"
    ).encode()


def parse_marker(console: str) -> dict[str, str]:
    """The user data's last line on a console: ``{"kind": "wrote"|"found", …}``."""
    found: dict[str, str] = {}
    for line in console.splitlines():
        at = line.find(f"{MARK} ")
        if at < 0:
            continue
        words = line[at:].split()
        if len(words) < 3 or words[1] not in ("wrote", "found"):
            continue
        found = {"kind": words[1], "sha": words[2]}
        for word in words[3:]:
            key, eq, value = word.partition("=")
            if eq:
                found[key] = value
    return found


@dataclass
class Timeline:
    """What the bench saw of one move, seconds from the action's request."""

    phases: dict[str, float] = field(default_factory=dict)  # first seen
    progress: list[tuple[float, int]] = field(default_factory=list)  # (t, done_bytes)
    answered: float | None = None  # the action's 202
    source_stopped: float | None = None  # the source's QEMU gone
    dest_active: float | None = None  # the destination's server ACTIVE
    dest_first_line: float | None = None  # its console's first line
    dest_marker: float | None = None  # its user data's line (the disk checked)

    def see_phase(self, phase: str, t: float) -> None:
        self.phases.setdefault(phase, t)

    def see_bytes(self, done: int, t: float) -> None:
        if not self.progress or self.progress[-1][1] != done:
            self.progress.append((t, done))


def _span(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else round(end - start, 3)


def phase_spans(tl: Timeline, mode: str = "cold") -> dict[str, float | None]:
    """The move's phases (the source's journal, the destination's server row)."""
    p = tl.phases
    exported = p.get("attaching", p.get("naming"))  # attaching: the volumes that stay
    if mode == "mild":
        return {
            "freeze": _span(0.0, exported),  # the disk frozen, exported while it runs
            "attach_naming": _span(exported, p.get("sending-base")),
            "transfer": _span(p.get("sending-base"), p.get("stopping")),
            "stop": _span(p.get("stopping"), p.get("exporting-delta")),
            "delta_export": _span(p.get("exporting-delta"), p.get("naming-delta")),
            "delta_transfer": _span(p.get("naming-delta"), p.get("committing")),
            "commit": _span(p.get("committing"), p.get("starting")),
            "start": _span(p.get("starting"), tl.dest_active),
            "commit_start": _span(p.get("committing"), tl.dest_active),
            "finish": _span(tl.dest_active, p.get("done")),
        }
    return {
        "stop": _span(0.0, p.get("exporting")),
        "export": _span(p.get("exporting"), exported),
        "attach_naming": _span(exported, p.get("sending")),
        "transfer": _span(p.get("sending"), p.get("committing")),
        "commit": _span(p.get("committing"), p.get("starting")),
        "start": _span(p.get("starting"), tl.dest_active),
        "commit_start": _span(p.get("committing"), tl.dest_active),
        # after the destination runs the guest: the source sees it, removes its own
        "finish": _span(tl.dest_active, p.get("done")),
    }


def chunk_figures(
    tl: Timeline, transfer_s: float | None, disk_size: int, chunk_bytes: int, bandwidth: float
) -> dict[str, Any]:
    """The transfer per chunk: its mean time against the link's time for a chunk (the
    rest is what each chunk added: a round trip and the destination's work, unless
    chunks in flight cover them), and the longest the journal's ``done_bytes`` stood
    still while the disk was sent (a stall). Polled, the journal shows answers that
    come together as one change: the intervals between changes are not per chunk."""
    sending = tl.phases.get("sending", tl.phases.get("sending-base"))
    count = -(-disk_size // chunk_bytes) if chunk_bytes else 0
    link_s = chunk_bytes / bandwidth
    figures: dict[str, Any] = {"count": count, "chunk_bytes": chunk_bytes,
                               "link_time_s": round(link_s, 4)}  # fmt: skip
    if sending is None or transfer_s is None or not count:
        return figures
    # the disk sent: a mild move's stops the guest (its changes' bytes come after), a
    # cold one's commits
    sent = tl.phases.get("stopping" if "sending-base" in tl.phases else "committing")
    gaps, last_t, last_done = [], sending, None
    for t, done in tl.progress:
        if t < sending:  # what the journal said before (a resumed move: its bytes)
            last_done = done
            continue
        if sent is not None and t > sent:
            break
        if last_done is None or done != last_done:
            gaps.append(t - last_t)
            last_t, last_done = t, done
    if sent is not None:
        gaps.append(sent - last_t)
    mean = transfer_s / count
    return figures | {
        "mean_s": round(mean, 4),
        "added_mean_s": round(mean - link_s, 4),
        "longest_still_s": round(max(gaps), 3) if gaps else None,
    }


def summarize(
    tl: Timeline,
    *,
    disk_size: int,
    bytes_done: int,
    wire: dict[str, int],
    copies_s: list[float],
    bandwidth: float,
    rtt_ms: float,
    chunk_bytes: int,
    in_flight: int = 1,
    mode: str = "cold",
    copy_bytes: int | None = None,
) -> dict[str, Any]:
    """The move's figures and its ratios against the link's raw copy of ``disk_size``
    bytes (``copies_s``: each copy's seconds for ``copy_bytes``, one round trip
    included; their mean, scaled to ``disk_size``, is the anchor)."""
    spans = phase_spans(tl, mode)
    copy_s = statistics.fmean(copies_s) * disk_size / (copy_bytes or disk_size)
    total = tl.dest_active
    transfer = spans["transfer"]
    chunks = chunk_figures(tl, transfer, disk_size, chunk_bytes, bandwidth)
    chunks["in_flight"] = in_flight
    ratio = None if total is None else round(total / copy_s, 3)
    return {
        "mode": mode,
        "total_s": total,
        "answered_s": tl.answered,
        "done_s": tl.phases.get("done"),
        "phases_s": spans,
        "phases_seen_s": dict(tl.phases),
        "downtime_s": {
            "to_active": _span(tl.source_stopped, tl.dest_active),
            "shutdown": _span(tl.phases.get("stopping"), tl.source_stopped),
            "asked_to_active": _span(tl.phases.get("stopping"), tl.dest_active),
            "to_first_line": _span(tl.source_stopped, tl.dest_first_line),
            "to_user_data": _span(tl.source_stopped, tl.dest_marker),
        },
        "source_stopped_s": tl.source_stopped,
        "dest_first_line_s": tl.dest_first_line,
        "dest_marker_s": tl.dest_marker,
        "disk_bytes": disk_size,
        "bytes_done": bytes_done,
        "wire": wire,
        "wire_overhead": round(wire["up"] / disk_size - 1, 4) if disk_size else None,
        "transfer_mib_s": (round(disk_size / MIB / transfer, 2) if transfer else None),
        "chunks": chunks,
        "anchor": {
            "copies_s": [round(c, 3) for c in copies_s],
            "copy_bytes": copy_bytes or disk_size,
            "copy_s": round(copy_s, 3),
            "copy_mib_s": round(disk_size / MIB / copy_s, 2),
            "cap_mib_s": round(bandwidth / MIB, 2),
            "rtt_ms": rtt_ms,
        },
        "ratio_total": ratio,
        "ratio_transfer": None if transfer is None else round(transfer / copy_s, 3),
        "goal_total": TOTAL_GOAL,
        "verdict": "n/a" if ratio is None else ("PASS" if ratio <= TOTAL_GOAL else "MISS"),
    }


def compare(cold: dict[str, Any], mild: dict[str, Any]) -> dict[str, Any]:
    """A mild move's downtime against a cold one's (goal: under ``DOWNTIME_GOAL``)."""
    a, b = cold["downtime_s"]["to_active"], mild["downtime_s"]["to_active"]
    ratio = None if not a or b is None else round(b / a, 3)
    verdict = "n/a" if ratio is None else ("PASS" if ratio < DOWNTIME_GOAL else "MISS")
    asked_a, asked_b = cold["downtime_s"]["asked_to_active"], mild["downtime_s"]["asked_to_active"]
    asked = None if not asked_a or asked_b is None else round(asked_b / asked_a, 3)
    return {"downtime_ratio": ratio, "downtime_goal": DOWNTIME_GOAL,
            "downtime_verdict": verdict, "asked_ratio": asked,
            "not_there_yet": NOT_THERE_YET}  # fmt: skip


def _s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.2f} s"


def _move_lines(r: dict[str, Any]) -> list[str]:
    a, ph, down, ch = r["anchor"], r["phases_s"], r["downtime_s"], r["chunks"]
    mib = r["disk_bytes"] / MIB
    wire = r["wire"]
    lines = [
        f"  {r['mode']}: total, from the action to the server ACTIVE at {r.get('dest', '?')}: "
        f"{_s(r['total_s'])} (the action answered at {_s(r['answered_s'])}; the source's "
        f"journal done at {_s(r['done_s'])})",
    ]
    if r["mode"] == "mild":
        lines.append(
            f"    freeze+export {_s(ph['freeze'])} · volumes and naming "
            f"{_s(ph['attach_naming'])} · transfer, the guest running {_s(ph['transfer'])} · "
            f"stop {_s(ph['stop'])} · changes exported {_s(ph['delta_export'])} · named and "
            f"sent {_s(ph['delta_transfer'])} ({r.get('delta_bytes', 0) / MIB:,.2f} MiB) · "
            f"commit {_s(ph['commit'])} · start {_s(ph['start'])}; then the source's removal "
            f"{_s(ph['finish'])}"
        )
    else:
        lines.append(
            f"    stop {_s(ph['stop'])} · export {_s(ph['export'])} · volumes and naming "
            f"{_s(ph['attach_naming'])} · transfer {_s(ph['transfer'])} · commit "
            f"{_s(ph['commit'])} · start {_s(ph['start'])} (commit+start "
            f"{_s(ph['commit_start'])}); then the source's removal {_s(ph['finish'])}"
        )
    lines.append(
        f"    sent: the exported disk {mib:,.1f} MiB ({r['disk_bytes']:,} bytes; journal: "
        f"{r['bytes_done']:,}); on the destination's link {wire['up'] / MIB:,.1f} MiB up, "
        f"{wire['down'] / MIB:,.2f} MiB down ({r['wire_overhead']:+.1%} over the disk); "
        f"transfer {r['transfer_mib_s'] if r['transfer_mib_s'] is not None else 'n/a'} MiB/s"
    )
    if ch.get("mean_s") is not None:
        lines.append(
            f"    chunks: {ch['count']}, {ch['mean_s']:.3f} s each on average for "
            f"{ch['link_time_s']:.3f} s of link time ({ch['added_mean_s']:+.3f} s); the "
            f"journal's bytes stood still at most {ch['longest_still_s']:.2f} s"
        )
    lines += [
        f"    downtime, from the guest stopped at the source (its QEMU gone, "
        f"{_s(r['source_stopped_s'])} after the action; its shutdown took "
        f"{_s(down['shutdown'])}) to ACTIVE at the destination: {_s(down['to_active'])} "
        f"(from the shutdown asked: {_s(down['asked_to_active'])}); to its first console "
        f"line {_s(down['to_first_line'])}, to its user data's line {_s(down['to_user_data'])}",
        f"    total ÷ copy {r['ratio_total']}× (goal ≤ {r['goal_total']}×: {r['verdict']}); "
        f"transfer ÷ copy {r['ratio_transfer']}× (the copy of {mib:,.1f} MiB: "
        f"{a['copy_s']:,.2f} s)",
    ]
    return lines


def render(r: dict[str, Any]) -> str:
    cold, mild, c = r["cold"], r["mild"], r["compare"]
    a = cold["anchor"]
    ch = cold["chunks"]
    lines = [
        f"relocation: two TCG guests (1 GiB root disk, {r.get('used_mib', USED_MIB)} MiB of "
        f"it written) moved from {r.get('source', '?')} to {r.get('dest', '?')} (qemu "
        f"driver at both), one cold, then one mild; every inter-site byte through the WAN "
        f"emulator at {a['rtt_ms']:.0f} ms RTT and {a['cap_mib_s']} MiB/s each way; chunks "
        f"of {ch['chunk_bytes'] / MIB:g} MiB, {ch.get('in_flight', 1)} in flight",
        *_move_lines(cold),
        *_move_lines(mild),
        f"  anchor, same run, a link of the same profile: a plain TCP copy of "
        f"{a['copy_bytes'] / MIB:,.1f} MiB, one round trip included: "
        + " / ".join(f"{x:,.2f} s" for x in a["copies_s"])
        + f" ({a['copy_mib_s']} MiB/s; scaled to each move's disk)",
        f"  mild downtime ÷ cold downtime {c['downtime_ratio']} (goal < {c['downtime_goal']}: "
        f"{c['downtime_verdict']}); from the shutdown asked {c['asked_ratio']}",
        f"  {c['not_there_yet']}",
    ]
    return "\n".join(lines)
