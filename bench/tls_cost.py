"""What site-to-site TLS costs: the same measurements plain and over TLS, in one run.

Each pair runs side by side: a plain fleet and a ``tls`` fleet (ProcessFleet, every
site behind its own emulated WAN link) are up at the same time and the measurements
alternate between them, so background work on the machine hits both alike. The anchor
is the plain figure of the same run. Goal: TLS at most 10 % over plain HTTP.

(a) **fan-out**: ``GET /image/v2/images`` with ``{image: S01&…&S32}`` at the origin
    of a 33-site fleet, 50 ms RTT links; median of ``ROUNDS`` fan-outs each. Also the
    same with the links' delay removed: the fleet's processing, where TLS's CPU shows.
(b) **sync**: one project created at a source with ``project * -> *`` marked,
    acknowledged by 10 receivers over 50 ms links; median of ``TRIALS`` last acks.
(c) **identity**: token validation and issue at one TLS site (operator certificate,
    16 keep-alive connections) against a real Keystone (``bench identity``'s anchor) and
    the same site plain, phases alternating; goal: validation ≥ 10× Keystone over TLS.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from bench.cores import SERVER_CPU, pinned_children
from bench.identity import GOALS, Target, Tokens, keep_best, measure, rss_mib, specs
from bench.keystone_anchor import BOOTSTRAP_PASSWORD, KeystoneAnchor
from bench.sync_propagation import one_change, wait_all_done
from edgefed.core.localca import ensure_local_ca, issue_server_certificate
from edgefed.testkit.auth import password_auth
from edgefed.testkit.fleet_process import ProcessFleet
from edgefed.testkit.process import LowPorts, SiteProcess

RTT_MS = 50.0
FANOUT_SITES = 32
ROUNDS = 21
SYNC_RECEIVERS = 10
TRIALS = 11
GOAL = 1.10  # TLS / plain
QUIET = (
    "health_interval_seconds = 600\n"
    "peer_timeout_seconds = 3600\n"
    "sync_backoff_seconds = [0.2, 0.5, 1.0]\n"
    'log_level = "warning"\n'
)


def _client(fleet: ProcessFleet, name: str) -> httpx.Client:
    token = fleet.token(name)
    return fleet.client(name, headers={"X-Auth-Token": token}, timeout=60)


def _timed(client: httpx.Client, path: str, headers: dict[str, str]) -> float:
    begin = time.perf_counter()
    r = client.get(path, headers=headers)
    elapsed = time.perf_counter() - begin
    if r.status_code != 200:
        raise RuntimeError(f"{path} answered {r.status_code}: {r.text[:300]}")
    return elapsed


def _pair(root: Path, names: list[str], **options: Any) -> dict[str, ProcessFleet]:
    """A plain and a TLS fleet of ``names``, both started (both stopped on failure)."""
    fleets: dict[str, ProcessFleet] = {}
    try:
        for mode in ("plain", "tls"):
            print(f"bench tls: starting the {mode} fleet of {len(names)} sites…", flush=True)
            fleets[mode] = ProcessFleet(
                root=root / mode, names=names, tls=mode == "tls", **options
            ).start()
    except BaseException:
        for fleet in fleets.values():
            fleet.stop()
        raise
    return fleets


def _ratio(plain: float, tls: float, *, goal: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "plain_ms": round(plain * 1000, 2),
        "tls_ms": round(tls * 1000, 2),
        "ratio": round(tls / plain, 3),
    }
    if goal:
        out["verdict"] = "PASS" if tls / plain <= GOAL else "MISS"
    return out


def fanout(root: Path, size: int = FANOUT_SITES, rounds: int = ROUNDS) -> dict[str, Any]:
    names = ["Origin"] + [f"S{i:02d}" for i in range(1, size + 1)]
    scope = {"X-Scope": "{image: " + "&".join(names[1:]) + "}"}
    fleets = _pair(root, names, rtt_ms=RTT_MS, gossip_interval=5.0, pick_port=LowPorts())
    try:
        clients = {mode: _client(fleet, "Origin") for mode, fleet in fleets.items()}
        path = "/image/v2/images"
        out: dict[str, Any] = {"sites": size}
        for phase in ("at_rtt", "at_zero_rtt"):
            if phase == "at_zero_rtt":
                for fleet in fleets.values():
                    for link in fleet.wan.links().values():
                        link.update(rtt_ms=0.0)
            times: dict[str, list[float]] = {"plain": [], "tls": []}
            for client in clients.values():  # warm: every connection of the origin open
                _timed(client, path, scope)
                _timed(client, path, scope)
            for _ in range(rounds):
                for mode, client in clients.items():
                    times[mode].append(_timed(client, path, scope))
            out[phase] = _ratio(
                statistics.median(times["plain"]),
                statistics.median(times["tls"]),
                goal=phase == "at_rtt",  # without the delay: where TLS's CPU shows, for context
            )
        for client in clients.values():
            client.close()
        return out
    finally:
        for fleet in fleets.values():
            fleet.stop()


def _register(fleet: ProcessFleet, receivers: list[str]) -> None:
    for name in receivers:
        with _client(fleet, name) as c:
            r = c.post("/edge/v1/sync/registrations", json={"registration": {"source": "Source"}})
            r.raise_for_status()
            pending = r.json()["registration"].get("status") == "pending"
        if pending:  # the source's operator accepts it
            with _client(fleet, "Source") as source:
                source.post(f"/edge/v1/sync/receivers/{name}/accept").raise_for_status()


def sync(root: Path, size: int = SYNC_RECEIVERS, trials: int = TRIALS) -> dict[str, Any]:
    names = ["Source"] + [f"R{n:02d}" for n in range(1, size + 1)]
    receivers = names[1:]
    fleets = _pair(
        root,
        names,
        rtt_ms=RTT_MS,
        gossip_interval=30.0,
        converge="first",
        extra_config=QUIET,
        pick_port=LowPorts(),
    )
    try:
        sources = {mode: _client(fleet, "Source") for mode, fleet in fleets.items()}
        for mode, fleet in fleets.items():
            source = sources[mode]
            r = source.post(
                "/edge/v1/sync/marks", json={"mark": {"kind": "project", "id": "*", "to": "*"}}
            )
            r.raise_for_status()
            _register(fleet, receivers)
            wait_all_done(source, receivers, within=120)
            one_change(source, receivers, f"warm-{mode}")
        last: dict[str, list[float]] = {"plain": [], "tls": []}
        for trial in range(trials):
            for mode, source in sources.items():
                acks = one_change(source, receivers, f"{mode}-{trial}")
                last[mode].append(max(acks.values()))
        for source in sources.values():
            source.close()
        out = _ratio(statistics.median(last["plain"]), statistics.median(last["tls"]))
        out["receivers"] = size
        return out
    finally:
        for fleet in fleets.values():
            fleet.stop()


def _login(target: Target, verify: Any) -> Tokens:
    def token() -> tuple[str, str]:
        r = httpx.post(
            f"{target.auth_url}/auth/tokens",
            json=password_auth("admin", target.password, "admin"),
            timeout=60,
            verify=verify,
        )
        if r.status_code != 201:
            raise RuntimeError(f"{target.name}: password auth gave {r.status_code}: {r.text}")
        return r.headers["x-subject-token"], r.json()["token"]["project"]["id"]

    admin, project_id = token()
    subject, _ = token()
    return Tokens(admin=admin, subject=subject, project_id=project_id)


def identity(root: Path, settings: dict[str, Any]) -> dict[str, Any]:
    ca = ensure_local_ca(root / "ca")
    cert, key = root / "site.pem", root / "site-key.pem"
    issue_server_certificate(
        ca, hosts=["127.0.0.1", "localhost"], cert_file=cert, key_file=key, name="bench"
    )
    sites = {
        "edgefed": SiteProcess(name="Plain", data_dir=root / "plain"),
        "edgefed_tls": SiteProcess(
            name="Tls",
            data_dir=root / "tls",
            tls=True,
            tls_cert_file=cert,
            tls_key_file=key,
            ca_file=ca.cert_file,
        ),
    }
    keystone = KeystoneAnchor()
    servers: dict[str, Any] = {}
    try:
        print("bench tls: starting Keystone and two edgefed sites (plain, TLS)…", flush=True)
        keystone.start()
        anchor = Target("keystone", keystone.auth_url, keystone.pid, BOOTSTRAP_PASSWORD)
        targets = {"keystone": anchor}
        verify: dict[str, Any] = {"keystone": True}
        for name, site in sites.items():
            with pinned_children(SERVER_CPU):
                site.start()
            assert site.proc is not None
            targets[name] = Target(name, site.auth_url, site.proc.pid, site.password)
            verify[name] = site.verify
        plans = {name: specs(t, _login(t, verify[name]), settings) for name, t in targets.items()}
        rounds = max(1, int(settings.get("rounds", 1)))
        for round_no in range(1, rounds + 1):
            for phase in ("validate", "issue"):
                for name, plan in plans.items():
                    print(f"bench tls: round {round_no}/{rounds}, {phase} on {name}…", flush=True)
                    figures = measure(targets[name], replace(plan[phase]))
                    keep_best(servers.setdefault(name, {}), phase, figures)
        for name, target in targets.items():
            servers[name]["rss_mib_after_load"] = rss_mib(target.pid)
    finally:
        for site in sites.values():
            site.stop()
        keystone.stop()
    ratios: dict[str, Any] = {}
    for phase, goal in GOALS.items():
        k, p, t = (servers[n][phase] for n in ("keystone", "edgefed", "edgefed_tls"))
        ratios[phase] = {
            "tls_over_keystone": round(t["rps"] / k["rps"], 1),
            "tls_over_keystone_per_cpu_s": round(t["req_per_cpu_s"] / k["req_per_cpu_s"], 1),
            "tls_over_plain": round(t["rps"] / p["rps"], 3),
            "tls_over_plain_per_cpu_s": round(t["req_per_cpu_s"] / p["req_per_cpu_s"], 3),
            "goal": goal,
            "verdict": "PASS" if t["rps"] / k["rps"] >= goal else "MISS",
        }
    return {"servers": servers, "ratios": ratios}


def run(settings: dict[str, Any]) -> dict[str, Any]:
    parts = settings.get("tls_parts", ("fanout", "sync", "identity"))
    root = Path(tempfile.mkdtemp(prefix="edgefed-bench-tls-"))
    results: dict[str, Any] = {"rtt_ms": RTT_MS, "goal_ratio": GOAL}
    try:
        if "identity" in parts:
            results["identity"] = identity(root / "identity", settings)
        if "fanout" in parts:
            size = int(settings.get("tls_fanout_sites", FANOUT_SITES))
            results["fanout"] = fanout(
                root / "fanout", size, int(settings.get("tls_rounds", ROUNDS))
            )
        if "sync" in parts:
            size = int(settings.get("tls_sync_receivers", SYNC_RECEIVERS))
            results["sync"] = sync(root / "sync", size, int(settings.get("tls_trials", TRIALS)))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return results


def render(results: dict[str, Any]) -> str:
    lines = [
        f"TLS cost: plain and TLS fleets side by side, measurements alternating "
        f"(goal: TLS <= {results['goal_ratio']:.2f} x plain)",
    ]
    f = results.get("fanout")
    if f:
        labels = {"at_rtt": f"{RTT_MS:.0f} ms RTT", "at_zero_rtt": "links' delay removed"}
        for phase, label in labels.items():
            r = f[phase]
            lines.append(
                f"fan-out to {f['sites']} sites, {label:<21}: plain {r['plain_ms']:7.1f} ms, "
                f"TLS {r['tls_ms']:7.1f} ms, ratio {r['ratio']:.3f}  "
                f"{r.get('verdict', '(processing only, no goal)')}"
            )
    s = results.get("sync")
    if s:
        lines.append(
            f"sync, one change to {s['receivers']} receivers (last ack): plain "
            f"{s['plain_ms']:.0f} ms, TLS {s['tls_ms']:.0f} ms, ratio {s['ratio']:.3f}  "
            f"{s['verdict']}"
        )
    i = results.get("identity")
    if i:
        lines.append(
            f"{'server':<12} {'phase':<9} {'req/s':>9} {'p50 ms':>7} {'cpu':>5} {'req/cpu-s':>9}"
        )
        for name, figures in i["servers"].items():
            for phase in ("validate", "issue"):
                g = figures[phase]
                lines.append(
                    f"{name:<12} {phase:<9} {g['rps']:>9.1f} {g['p50_ms']:>7.2f} "
                    f"{g['server_cpu_share']:>5.2f} {g['req_per_cpu_s']:>9.1f}"
                )
        for phase, r in i["ratios"].items():
            lines.append(
                f"{phase:<9} over TLS: {r['tls_over_keystone']}x Keystone "
                f"({r['tls_over_keystone_per_cpu_s']}x per CPU-s; goal >= {r['goal']}x "
                f"{r['verdict']}); TLS/plain req/s {r['tls_over_plain']:.3f}, per CPU-s "
                f"{r['tls_over_plain_per_cpu_s']:.3f}"
            )
    return "\n".join(lines)
