"""Token validation and token issue per second: one edgefed site against a real Keystone.

Both servers run on the same machine at the same time, each pinned to the server core;
the load generator runs in its own process on the other core with the same settings
for both. The phases alternate (Keystone validate, edgefed validate, Keystone issue,
edgefed issue) so that background noise on the machine hits both sides alike. Only
200/201 count as successes; everything else is reported as an error.

- validation: ``GET …/v3/auth/tokens`` with ``X-Auth-Token`` = an admin token and
  ``X-Subject-Token`` = another project-scoped token of the admin;
- issue: ``POST …/v3/auth/tokens`` with the token method, re-scoping the admin's
  project-scoped token to the same project (a new token per request).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from bench.cores import SERVER_CPU, loadgen_cpu, pinned_children, tree_cpu_seconds
from bench.keystone_anchor import BOOTSTRAP_PASSWORD, KeystoneAnchor
from bench.loadgen import LoadResult, LoadSpec, run_load
from edgefed.testkit.process import SiteProcess

GOALS = {"validate": 10.0, "issue": 5.0}
# Below this share of its core a server was waiting for the CPU, not working.
SATURATED = 0.8


@dataclass(frozen=True)
class Target:
    """A server under test: where its Keystone v3 API is and how to log in."""

    name: str
    auth_url: str  # …/v3
    pid: int
    password: str


@dataclass(frozen=True)
class Tokens:
    admin: str
    subject: str
    project_id: str


def password_token(target: Target) -> tuple[str, str]:
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": "admin",
                        "domain": {"id": "default"},
                        "password": target.password,
                    }
                },
            },
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}},
        }
    }
    r = httpx.post(f"{target.auth_url}/auth/tokens", json=body, timeout=60)
    if r.status_code != 201:
        raise RuntimeError(f"{target.name}: password auth gave {r.status_code}: {r.text[:300]}")
    return r.headers["x-subject-token"], r.json()["token"]["project"]["id"]


def issue_body(tokens: Tokens) -> str:
    return json.dumps(
        {
            "auth": {
                "identity": {"methods": ["token"], "token": {"id": tokens.admin}},
                "scope": {"project": {"id": tokens.project_id}},
            }
        }
    )


def specs(target: Target, tokens: Tokens, settings: dict[str, Any]) -> dict[str, LoadSpec]:
    url = f"{target.auth_url}/auth/tokens"
    common = {
        "connections": settings["connections"],
        "duration_s": settings["duration_s"],
        "warmup_s": settings["warmup_s"],
        "max_requests": settings["max_requests"],
        "cpu": loadgen_cpu(),
    }
    return {
        "validate": LoadSpec(
            url=url,
            headers={"X-Auth-Token": tokens.admin, "X-Subject-Token": tokens.subject},
            ok_statuses=(200,),
            **common,
        ),
        "issue": LoadSpec(
            url=url,
            method="POST",
            headers={"Content-Type": "application/json"},
            body=issue_body(tokens),
            ok_statuses=(201,),
            **common,
        ),
    }


def check_once(spec: LoadSpec) -> None:
    """One request by hand before the load, so a wrong request fails loudly, not as 0 rps."""
    headers = dict(spec.headers)
    r = httpx.request(spec.method, spec.url, headers=headers, content=spec.body, timeout=60)
    if r.status_code not in spec.ok_statuses:
        raise RuntimeError(f"{spec.method} {spec.url} gave {r.status_code}: {r.text[:300]}")


def login(target: Target) -> Tokens:
    admin, project_id = password_token(target)
    subject, _ = password_token(target)
    return Tokens(admin=admin, subject=subject, project_id=project_id)


def measure(target: Target, spec: LoadSpec) -> dict[str, Any]:
    """Warm up, then measure; the server's CPU time is sampled around the measured part."""
    if spec.warmup_s > 0:
        run_load(replace(spec, duration_s=spec.warmup_s, warmup_s=0.0))
    measured = replace(spec, warmup_s=0.0)
    before = tree_cpu_seconds(target.pid)
    result: LoadResult = run_load(measured)
    busy = tree_cpu_seconds(target.pid) - before
    figures = result.as_dict()
    # Near 1.0: the server's core was saturated (neither the generator nor idling limited
    # it). Lower: the core was shared with other work on the machine; then req/cpu-s, the
    # work done per second of the server's own CPU, is the steadier figure.
    figures["server_cpu_share"] = round(busy / result.elapsed_s, 2) if result.elapsed_s else 0.0
    figures["req_per_cpu_s"] = round(result.ok / busy, 1) if busy > 0 else 0.0
    return figures


def keep_best(server: dict[str, Any], phase: str, figures: dict[str, Any]) -> None:
    """Keep the round with the most successes per second; remember every round's rate.

    Background work on the machine only ever slows a server down, so the best round is
    the one least disturbed (the usual reading of repeated benchmark runs).
    """
    previous = server.get(phase)
    rounds = [*previous["rps_per_round"], figures["rps"]] if previous else [figures["rps"]]
    if previous is None or figures["rps"] > previous["rps"]:
        server[phase] = figures
    server[phase]["rps_per_round"] = rounds


def rss_mib(pid: int) -> float:
    """Resident memory of a process and its children (Keystone is master + worker)."""
    total_kib = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total_kib += int(line.split()[1])
    return round(total_kib / 1024, 1)


def start_targets(
    keystone: KeystoneAnchor, site: SiteProcess, servers: dict[str, Any]
) -> dict[str, Target]:
    """Start what can start; a server that cannot is reported and the other still runs."""
    targets: dict[str, Target] = {}
    print("bench identity: starting Keystone (gunicorn, one sync worker)…", flush=True)
    try:
        keystone.start()
        targets["keystone"] = Target(
            "keystone", keystone.auth_url, keystone.pid, BOOTSTRAP_PASSWORD
        )
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        servers["keystone"] = {"error": f"the anchor did not start: {exc}"}
    print("bench identity: starting an edgefed site…", flush=True)
    try:
        with pinned_children(SERVER_CPU):
            site.start()
        assert site.proc is not None
        targets["edgefed"] = Target("edgefed", site.auth_url, site.proc.pid, site.password)
    except (RuntimeError, OSError) as exc:
        servers["edgefed"] = {"error": f"the site did not start: {exc}"}
    return targets


def run(settings: dict[str, Any]) -> dict[str, Any]:
    """Start both servers, measure alternately, always stop both."""
    results: dict[str, Any] = {"settings": settings, "servers": {}}
    servers: dict[str, Any] = results["servers"]
    workdir = Path(tempfile.mkdtemp(prefix="edgefed-bench-"))
    keystone = KeystoneAnchor()
    site = SiteProcess(name="Bench", data_dir=workdir / "site")
    try:
        targets = start_targets(keystone, site, servers)
        plans: dict[str, dict[str, LoadSpec]] = {}
        for name, target in targets.items():
            try:
                plans[name] = specs(target, login(target), settings)
                for spec in plans[name].values():
                    check_once(spec)
            except (RuntimeError, httpx.HTTPError, KeyError) as exc:
                servers[name] = {"error": str(exc)}
                plans.pop(name, None)
        rounds = max(1, int(settings.get("rounds", 1)))
        for round_no in range(1, rounds + 1):
            for phase in ("validate", "issue"):
                for name, plan in plans.items():
                    print(
                        f"bench identity: round {round_no}/{rounds}, {phase} on {name}…", flush=True
                    )
                    figures = measure(targets[name], plan[phase])
                    keep_best(servers.setdefault(name, {}), phase, figures)
        for name in plans:
            servers[name]["rss_mib_after_load"] = rss_mib(targets[name].pid)
    finally:
        site.stop()
        keystone.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    results["ratios"] = ratios(servers)
    return results


def ratios(servers: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for phase, goal in GOALS.items():
        ours = servers.get("edgefed", {}).get(phase, {})
        anchor = servers.get("keystone", {}).get(phase, {})
        if not ours.get("rps") or not anchor.get("rps"):
            out[phase] = {"ratio": None, "goal": goal, "verdict": "NOT MEASURED"}
            continue
        ratio = round(ours["rps"] / anchor["rps"], 1)
        per_cpu = None
        if ours.get("req_per_cpu_s") and anchor.get("req_per_cpu_s"):
            per_cpu = round(ours["req_per_cpu_s"] / anchor["req_per_cpu_s"], 1)
        # A server that got much less than its core was slowed by other work on the
        # machine, and then the req/s ratio says more about the machine than the code.
        starved = min(ours["server_cpu_share"], anchor["server_cpu_share"]) < SATURATED
        out[phase] = {
            "ratio": ratio,
            "ratio_per_cpu_s": per_cpu,
            "goal": goal,
            "verdict": "PASS" if ratio >= goal else "MISS",
            "noisy": starved,
        }
    return out


def render(results: dict[str, Any]) -> str:
    lines = [
        "identity: requests/s of one edgefed site vs Keystone (same machine, same run;"
        " best round shown)",
        f"{'server':<9} {'phase':<9} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'errors':>7} {'conns':>6} {'cpu':>5} {'req/cpu-s':>9}  req/s per round",
    ]
    for name, figures in results["servers"].items():
        if "error" in figures:
            lines.append(f"{name:<9} not measured: {figures['error']}")
            continue
        for phase in ("validate", "issue"):
            f = figures.get(phase)
            if f is None:
                continue
            lines.append(
                f"{name:<9} {phase:<9} {f['rps']:>9.1f} {f['p50_ms']:>8.1f} {f['p99_ms']:>8.1f} "
                f"{f['errors']:>7} {f['connects']:>6} {f['server_cpu_share']:>5.2f} "
                f"{f['req_per_cpu_s']:>9.1f}  {'/'.join(f'{r:.0f}' for r in f['rps_per_round'])}"
            )
        lines.append(f"{name:<9} RSS after load: {figures.get('rss_mib_after_load')} MiB")
    for phase, r in results["ratios"].items():
        shown = "n/a" if r["ratio"] is None else f"{r['ratio']}x"
        per_cpu = r.get("ratio_per_cpu_s")
        context = "" if per_cpu is None else f" (per server CPU-second: {per_cpu}x)"
        verdict = f"{r['verdict']}, noisy" if r.get("noisy") else r["verdict"]
        lines.append(
            f"ratio {phase:<9} edgefed/keystone = {shown:>8}  goal >= {r['goal']}x  "
            f"{verdict:<5}{context}"
        )
    if any(r.get("noisy") for r in results["ratios"].values()):
        lines.append(
            f"noisy: a server had less than {SATURATED:.0%} of its core (column cpu): other work"
            " on the machine; rerun on a quiet machine, and meanwhile trust the per-CPU ratio"
        )
    return "\n".join(lines)
