"""What one idle edgefed site costs: resident memory and start time.

An edge site runs on a small box next to the workloads, so the control plane's own
footprint is a feature. Start time is measured from spawning ``edgefed site serve``
to its ``EDGEFED READY`` line, the median of several starts, on a fresh data
directory (migrations, key generation, admin bootstrap) and on an existing one (a
restart). Memory is VmRSS from /proc after a handful of typical requests (password
token, validation, catalog, a list) and a short idle pause, plus the peak (VmHWM),
and VmRSS again after three more password logins and a pause (each login's argon2
check takes 19 MiB, which an idle site must have handed back).

With ``--driver qemu`` each site also runs its local host agent, which makes the site's
network namespace on this host (``edgefed-bench``); its host network state goes to a
directory of this run's own (not the shared ``/run/edgefed/hostnet``), and every site
stopped for good is removed with everything it made (``testkit.qemu_site``): no agent,
namespace, bridge, tap, dnsmasq or /run directory is left behind.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.cores import SERVER_CPU, pinned_children
from edgefed.testkit.process import SiteProcess
from edgefed.testkit.qemu_site import hostnet_dir_for, qemu_config, remove_qemu_site

RSS_GOAL_MIB = 80.0
# Password logins after the measurement, and the idle RSS measured again after them.
LOGINS = 3


def proc_status(pid: int) -> dict[str, int]:
    """The ``Vm*`` and ``Rss*`` lines of /proc/<pid>/status, in KiB.

    RssFile is mostly shared libraries (shared with every other site on the host);
    RssAnon is what this process alone holds (Python objects, heaps, stacks).
    """
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name.startswith(("Vm", "Rss")) and value.strip().endswith("kB"):
            out[name] = int(value.split()[0])
    return out


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (the qemu driver's local host agent)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def agent_rss_mib(pid: int, wait_s: float = 30.0) -> float:
    """VmRSS of the site's local host agent once it has started (0 if none)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        for child in children(pid):
            try:
                if "host" in Path(f"/proc/{child}/cmdline").read_text():
                    time.sleep(2.0)  # enrolled and polling: what it keeps at idle
                    return round(proc_status(child).get("VmRSS", 0) / 1024, 1)
            except FileNotFoundError:
                continue
        time.sleep(0.2)
    return 0.0


def timed_start(site: SiteProcess) -> float:
    begin = time.perf_counter()
    with pinned_children(SERVER_CPU):
        site.start()
    return time.perf_counter() - begin


def typical_body(site: SiteProcess) -> dict[str, Any]:
    """The body of the admin's password login."""
    return {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": "admin",
                        "domain": {"id": "default"},
                        "password": site.password,
                    }
                },
            },
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}},
        }
    }


def typical_requests(site: SiteProcess) -> int:
    """A few requests a CLI session makes; returns how many got a 2xx."""
    body = typical_body(site)
    ok = 0
    with httpx.Client(base_url=site.url, timeout=60) as client:
        r = client.post("/identity/v3/auth/tokens", json=body)
        ok += r.is_success
        token = r.headers.get("x-subject-token", "")
        headers = {"X-Auth-Token": token}
        for path in ("/identity/v3/auth/catalog", "/identity/v3/projects", "/image/v2/images"):
            ok += client.get(path, headers=headers).is_success
        validate = {**headers, "X-Subject-Token": token}
        ok += client.get("/identity/v3/auth/tokens", headers=validate).is_success
    return ok


def password_logins(site: SiteProcess, count: int) -> int:
    """``count`` password logins in a row (each an argon2 check of 19 MiB); how many
    got their token."""
    body = typical_body(site)
    ok = 0
    with httpx.Client(base_url=site.url, timeout=60) as client:
        for _ in range(count):
            ok += client.post("/identity/v3/auth/tokens", json=body).status_code == 201
    return ok


def run(settings: dict[str, Any]) -> dict[str, Any]:
    starts = int(settings.get("starts", 3))
    idle_s = float(settings.get("idle_s", 2.0))
    driver = str(settings.get("driver", "fake"))
    hostnet_dir = hostnet_dir_for(f"bench-footprint-{os.getpid()}")
    # qemu: the accelerator the agent's probe picks, the agent's default poll
    extra = (
        qemu_config(hostnet_dir, accel="auto", poll_wait=None)
        if driver == "qemu"
        else f'compute_driver = "{driver}"\n'
    )

    def stop_for_good(site: SiteProcess) -> None:
        if driver == "qemu":
            remove_qemu_site(site, hostnet_dir)  # its agent, guests and host network
        else:
            site.stop()

    root = Path(tempfile.mkdtemp(prefix="edgefed-footprint-"))
    fresh: list[float] = []
    existing: list[float] = []
    memory: dict[str, Any] = {}
    for i in range(starts):
        site = SiteProcess(name="Bench", data_dir=root / f"fresh-{i}", extra_config=extra)
        try:
            print(f"bench footprint: start {i + 1}/{starts} on a fresh data dir…", flush=True)
            fresh.append(timed_start(site))
        finally:
            stop_for_good(site)
    site = SiteProcess(name="Bench", data_dir=root / "fresh-0", extra_config=extra)
    try:
        for i in range(starts):
            print(f"bench footprint: start {i + 1}/{starts} on an existing data dir…", flush=True)
            existing.append(timed_start(site))
            if i < starts - 1:
                site.stop()
        assert site.proc is not None
        pid = site.proc.pid
        after_start = proc_status(pid)
        ok = typical_requests(site)
        time.sleep(idle_s)  # the measurement itself: what an idle site keeps resident
        idle = proc_status(pid)
        memory = {
            "rss_mib_after_start": round(after_start.get("VmRSS", 0) / 1024, 1),
            "rss_mib_idle": round(idle.get("VmRSS", 0) / 1024, 1),
            "peak_rss_mib": round(idle.get("VmHWM", 0) / 1024, 1),
            "rss_anon_mib_idle": round(idle.get("RssAnon", 0) / 1024, 1),
            "rss_file_mib_idle": round(idle.get("RssFile", 0) / 1024, 1),
            "requests_ok": ok,
            "agent_rss_mib_idle": agent_rss_mib(pid) if driver == "qemu" else None,
        }
        # Then more CLI sessions (each logs in with its password), and idle again: the
        # memory of their password checks must have gone back (core/heap.py).
        memory["logins_ok"] = password_logins(site, LOGINS)
        time.sleep(idle_s + 1.0)
        memory["rss_mib_idle_after_logins"] = round(proc_status(pid).get("VmRSS", 0) / 1024, 1)
    finally:
        try:
            stop_for_good(site)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    rss = memory.get("rss_mib_idle", 0.0)
    return {
        "settings": {"starts": starts, "idle_s": idle_s, "driver": driver},
        "start_s_fresh": {"median": round(statistics.median(fresh), 2), "all": _r(fresh)},
        "start_s_existing": {"median": round(statistics.median(existing), 2), "all": _r(existing)},
        "memory": memory,
        "goal": {
            "idle_rss_mib_below": RSS_GOAL_MIB,
            "verdict": "PASS" if 0 < rss < RSS_GOAL_MIB else "MISS",
        },
    }


def _r(values: list[float]) -> list[float]:
    return [round(v, 2) for v in values]


def render(results: dict[str, Any]) -> str:
    m = results["memory"]
    g = results["goal"]
    return "\n".join(
        [
            f"footprint: one edgefed site, {results['settings']['driver']} driver",
            f"start time, fresh data dir    median {results['start_s_fresh']['median']:.2f} s  "
            f"{results['start_s_fresh']['all']}",
            f"start time, existing data dir median {results['start_s_existing']['median']:.2f} s  "
            f"{results['start_s_existing']['all']}",
            f"RSS after start {m['rss_mib_after_start']} MiB, idle after "
            f"{m['requests_ok']} requests {m['rss_mib_idle']} MiB, peak {m['peak_rss_mib']} MiB",
            f"  idle RSS = {m['rss_anon_mib_idle']} MiB private (anon) + "
            f"{m['rss_file_mib_idle']} MiB file-backed (shared libraries)",
            f"  idle again after {m['logins_ok']} more password logins: "
            f"{m['rss_mib_idle_after_logins']} MiB",
            *(
                [f"  the local host agent (another process): {m['agent_rss_mib_idle']} MiB"]
                if m.get("agent_rss_mib_idle") is not None
                else []
            ),
            f"goal idle RSS < {g['idle_rss_mib_below']:.0f} MiB: {g['verdict']}",
        ]
    )
