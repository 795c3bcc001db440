"""How fast a change made at a source reaches its receivers, and a bulk first sync.

(a) **Propagation.** Real ``edgefed site serve`` processes, every one behind its own
emulated WAN link of ``RTT_MS`` round trip (``edgefed.wan``); the source has
``project * -> *`` marked. A project is created at the source; the clock starts at the
source's 201 and stops at the *last* receiver's acknowledgement: the source records, per
receiver, the time the receiver's 2xx to the push arrived (``updated_at`` of the done
outbox row, same host clock). That is read once everything is done from the source's
progress view (``depth=0``: no fan-out to the receivers while measuring). Receivers are
registered in steps (10, then 50, then 100) on one fleet, each step warmed up first (the
full sync of what exists and one change, so connections are open).

Anchors: the physical floor is one RTT (a push is one request and its answer on an open
connection), measured through a link in the same run; a polling design (dcorch's default
5 s cycle) waits half a cycle on average before it even notices a change: 2.5 s mean.
Goals: 10 receivers within 2 x RTT, 100 within 1 s.

(b) **Bulk.** 10,000 projects exist and are marked at the source; 20 fresh receivers
register at once; the clock runs from the registrations to every receiver holding all
of them (the source's done counts, polled every 0.25 s), and one receiver's project list
is checked.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from edgefed.testkit.fleet_process import ProcessFleet, password_token
from edgefed.testkit.process import LowPorts

RTT_MS = 50.0
POLLING_PERIOD_S = 5.0
TRIALS = 7
BULK_PROJECTS = 10_000
BULK_RECEIVERS = 20
STEPS = (10, 50, 100)
START_PARALLELISM = 4  # two cores: more at once only makes each start slower
WAIT_S = 60.0
# Quiet fleet: no health probes or fast gossip stealing the two cores while measuring.
QUIET = (
    "health_interval_seconds = 600\n"
    "peer_timeout_seconds = 3600\n"
    "sync_backoff_seconds = [0.2, 0.5, 1.0]\n"
    'log_level = "warning"\n'
    # The source's operator accepts every receiver ahead (registration takes both sides).
    'sync_accept = ["*"]\n'
)


def start_fleet(root: Path, names: list[str], attempts: int = 3) -> ProcessFleet:
    """Start a quiet fleet; again on a port clash (ports are picked before a long start,
    and other processes on the host may take one meanwhile)."""
    for attempt in range(1, attempts + 1):
        try:
            return ProcessFleet(
                root=root / f"try{attempt}",
                names=names,
                rtt_ms=RTT_MS,
                # Gossip as a 100-site fleet would configure it: at 3 s, 101 sites gossiping
                # through the emulator took both cores before anything was measured.
                gossip_interval=30.0,
                converge="first",
                extra_config=QUIET,
                start_parallelism=START_PARALLELISM,
                start_timeout=300,
                converge_deadline=600,
                pick_port=LowPorts(),
            ).start()
        except RuntimeError as exc:
            if "Address already in use" not in str(exc) or attempt == attempts:
                raise
    raise AssertionError("unreachable")


def admin_client(fleet: ProcessFleet, name: str) -> httpx.Client:
    site = fleet[name]
    token = password_token(site.url, site.password)
    return httpx.Client(base_url=site.url, headers={"X-Auth-Token": token}, timeout=60)


def register(fleet: ProcessFleet, receivers: list[str], *, source: str = "Source") -> None:
    def one(name: str) -> None:
        with admin_client(fleet, name) as c:
            r = c.post("/edge/v1/sync/registrations", json={"registration": {"source": source}})
            r.raise_for_status()
            if r.json()["registration"]["status"] != "active":
                raise RuntimeError(f"{source} did not accept {name} at once: {r.text}")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, receivers))


def progress(source: httpx.Client, **params: str) -> dict[str, Any]:
    r = source.get("/edge/v1/sync/progress", params={"depth": "0", **params})
    r.raise_for_status()
    report: dict[str, Any] = r.json()["progress"]
    return report


def wait_all_done(source: httpx.Client, receivers: list[str], *, within: float) -> None:
    """Until nothing is pending for any of ``receivers`` (bounded)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        targets = progress(source)["targets"]
        if all(
            name in targets
            and targets[name]["pending"] + targets[name]["inflight"] + targets[name]["failing"] == 0
            for name in receivers
        ):
            return
        time.sleep(0.1)  # bounded poll of real processes
    raise TimeoutError(f"receivers still had work after {within} s")


def one_change(source: httpx.Client, receivers: list[str], label: str) -> dict[str, float]:
    """Create a project; seconds from the 201 to each receiver's acknowledgement."""
    r = source.post("/identity/v3/projects", json={"project": {"name": label}})
    answered = time.time()
    r.raise_for_status()
    pid = r.json()["project"]["id"]
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        rows = progress(source, kind="project", id=pid).get("resources", [])
        done = {e["target"]: e["updated_at"] for e in rows if e["state"] == "done"}
        if set(receivers) <= set(done):
            return {name: done[name] - answered for name in receivers}
        # Bounded poll; the figure comes from the recorded ack times, so the poll only
        # decides when the next trial starts. Every poll is a progress report the source
        # computes on the loop that pushes: polled every 20 ms, the observer took a
        # good share of the source's time and delayed what it measured.
        time.sleep(0.1)
    raise TimeoutError(f"{label} was not acknowledged by every receiver within {WAIT_S} s")


def rtt_floor(fleet: ProcessFleet, name: str, samples: int = 10) -> float:
    """Seconds for one small request through ``name``'s WAN link on an open connection."""
    times = []
    with httpx.Client(base_url=fleet[name].public_url, timeout=30) as c:
        c.get("/identity/v3").raise_for_status()
        for _ in range(samples):
            begin = time.perf_counter()
            c.get("/identity/v3").raise_for_status()
            times.append(time.perf_counter() - begin)
    return statistics.median(times)


def verdict(value: float, goal: float) -> str:
    return "PASS" if value <= goal else "MISS"


def propagation(root: Path, steps: tuple[int, ...], trials: int) -> dict[str, Any]:
    names = ["Source"] + [f"R{n:03d}" for n in range(1, max(steps) + 1)]
    began = time.monotonic()
    fleet = start_fleet(root, names)
    started_s = time.monotonic() - began
    out: dict[str, Any] = {"fleet_start_s": round(started_s, 1), "steps": []}
    try:
        floor = rtt_floor(fleet, names[1])
        out["rtt_floor_s"] = round(floor, 4)
        with admin_client(fleet, "Source") as source:
            r = source.post(
                "/edge/v1/sync/marks", json={"mark": {"kind": "project", "id": "*", "to": "*"}}
            )
            r.raise_for_status()
            registered: list[str] = []
            for n in steps:
                new = names[1 + len(registered) : 1 + n]
                register(fleet, new)
                registered += new
                wait_all_done(source, registered, within=120)
                one_change(source, registered, f"warm-{n}")
                runs = [one_change(source, registered, f"p{n}-{t}") for t in range(trials)]
                last = [max(run.values()) for run in runs]
                every = [v for run in runs for v in run.values()]
                goal = 2 * RTT_MS / 1000 if n <= 10 else 1.0
                step = {
                    "receivers": n,
                    "last_ack_s": {
                        "median": round(statistics.median(last), 4),
                        "min": round(min(last), 4),
                        "max": round(max(last), 4),
                        "all": [round(v, 4) for v in last],
                    },
                    "each_ack_median_s": round(statistics.median(every), 4),
                    "first_ack_median_s": round(
                        statistics.median(min(run.values()) for run in runs), 4
                    ),
                    "x_rtt": round(statistics.median(last) / (RTT_MS / 1000), 2),
                    "x_floor": round(statistics.median(last) / floor, 2),
                    "polling_speedup": round((POLLING_PERIOD_S / 2) / statistics.median(last), 1),
                }
                if n in (10, 100):
                    step["goal_s"] = goal
                    step["verdict"] = verdict(statistics.median(last), goal)
                out["steps"].append(step)
    finally:
        fleet.stop()
    return out


async def create_projects(url: str, token: str, count: int, *, connections: int = 16) -> None:
    queue = iter(range(count))
    headers = {"X-Auth-Token": token}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as c:

        async def worker() -> None:
            for n in queue:
                r = await c.post("/identity/v3/projects", json={"project": {"name": f"b{n:05d}"}})
                r.raise_for_status()

        await asyncio.gather(*(worker() for _ in range(connections)))


def bulk(root: Path, projects: int, receivers: int) -> dict[str, Any]:
    names = ["Source"] + [f"B{n:02d}" for n in range(1, receivers + 1)]
    fleet = start_fleet(root, names)
    try:
        src = fleet["Source"]
        begin = time.monotonic()
        asyncio.run(create_projects(src.url, password_token(src.url, src.password), projects))
        created_s = time.monotonic() - begin
        with admin_client(fleet, "Source") as source:
            r = source.post(
                "/edge/v1/sync/marks", json={"mark": {"kind": "project", "id": "*", "to": "*"}}
            )
            r.raise_for_status()
            begin = time.monotonic()
            register(fleet, names[1:])
            registered_s = time.monotonic() - begin
            deadline = begin + 900
            while time.monotonic() < deadline:
                targets = progress(source)["targets"]
                if all(
                    targets.get(n, {}).get("done", 0) >= projects
                    and targets[n]["pending"] + targets[n]["inflight"] + targets[n]["failing"] == 0
                    for n in names[1:]
                ):
                    break
                time.sleep(0.25)  # bounded poll of the source's progress
            else:
                raise TimeoutError("the bulk sync did not finish within 900 s")
            delivered_s = time.monotonic() - begin
        with admin_client(fleet, names[-1]) as last:
            held = [
                p for p in last.get("/identity/v3/projects").json()["projects"]
                if p["name"].startswith("b")
            ]  # fmt: skip
        rows = projects * receivers
        return {
            "projects": projects,
            "receivers": receivers,
            "create_at_source_s": round(created_s, 1),
            "registrations_answered_s": round(registered_s, 1),
            "delivered_s": round(delivered_s, 1),
            "rows_per_s": round(rows / delivered_s),
            "checked_receiver_holds": len(held),
        }
    finally:
        fleet.stop()


def run(settings: dict[str, Any]) -> dict[str, Any]:
    steps = tuple(settings.get("sync_steps", STEPS))
    trials = int(settings.get("sync_trials", TRIALS))
    projects = int(settings.get("sync_bulk_projects", BULK_PROJECTS))
    receivers = int(settings.get("sync_bulk_receivers", BULK_RECEIVERS))
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
        root = Path(tmp)
        results: dict[str, Any] = {
            "rtt_ms": RTT_MS,
            "polling_anchor_mean_s": POLLING_PERIOD_S / 2,
            "propagation": propagation(root / "propagation", steps, trials),
        }
        if projects:
            try:
                results["bulk"] = bulk(root / "bulk", projects, receivers)
            except (TimeoutError, RuntimeError, httpx.HTTPError) as exc:
                results["bulk"] = {"error": f"{type(exc).__name__}: {exc}"}
    return results


def render(results: dict[str, Any]) -> str:
    p = results["propagation"]
    rtt = results["rtt_ms"]
    lines = [
        f"sync: one change to N receivers, each behind a {rtt:.0f} ms RTT link "
        f"(fleet of {p['steps'][-1]['receivers'] + 1} processes started in {p['fleet_start_s']} s)",
        f"anchors: floor = 1 RTT ({rtt:.0f} ms configured, {p['rtt_floor_s'] * 1000:.0f} ms "
        f"measured through a link); 5 s polling = {results['polling_anchor_mean_s']:.1f} s mean",
        "  N   last ack median (min-max)    x RTT   x floor  vs polling  first/each ack  goal",
    ]
    for s in p["steps"]:
        a = s["last_ack_s"]
        goal = f"<= {s['goal_s'] * 1000:.0f} ms {s['verdict']}" if "goal_s" in s else ""
        lines.append(
            f"{s['receivers']:>4}   {a['median'] * 1000:7.0f} ms ({a['min'] * 1000:.0f}-"
            f"{a['max'] * 1000:.0f})      {s['x_rtt']:5.2f}   {s['x_floor']:6.2f}   "
            f"{s['polling_speedup']:6.1f}x    {s['first_ack_median_s'] * 1000:.0f}/"
            f"{s['each_ack_median_s'] * 1000:.0f} ms   {goal}"
        )
    b = results.get("bulk")
    if b and "error" in b:
        lines.append(f"bulk: could not finish: {b['error']}")
    elif b:
        lines.append(
            f"bulk: {b['projects']} projects to {b['receivers']} fresh receivers in "
            f"{b['delivered_s']} s ({b['rows_per_s']} rows/s; registrations answered in "
            f"{b['registrations_answered_s']} s; a receiver holds {b['checked_receiver_holds']}; "
            f"creating them at the source took {b['create_at_source_s']} s)"
        )
    return "\n".join(lines)
