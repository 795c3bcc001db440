"""What a running site imports: the libraries an idle site must not carry (and the
same for the host agent, the other long-lived process of an all-in-one site).

Each of these was measured (docs/bench.md, ``python -m bench footprint``) and kept out of
``edgefed site serve`` on purpose; an innocent top-level import brings any of them back
without a test failing anywhere else. The site runs in a fresh interpreter, set up the
way ``edgefed site serve`` sets itself up, starts (migrations, key, bootstrap) and
answers the requests of a short CLI session before its modules are listed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from edgefed.testkit.auth import password_auth
from edgefed.testkit.process import SiteProcess

NOT_LOADED = {
    "cryptography": "its 7 MiB extension; Ed25519 is libsodium (core/ed25519.py)",
    "sqlalchemy.orm": "the store is Core only (store/engine.py)",
    "sqlalchemy.ext.asyncio": "it imports the ORM (store/engine.py)",
    "sqlalchemy.dialects.postgresql": "only a PostgreSQL site needs it",
    "asyncpg": "only a PostgreSQL site needs it",
    "greenlet": "SQLite statements run on the loop (store/engine.py)",
    "aiosqlite": "SQLite statements run on the loop (store/engine.py)",
    "pydantic.v1": "blocked in cli/serve.py",
    "click": "uvicorn's command line (cli/serve.py imports Config and Server only)",
    "watchfiles": "uvicorn's reloader",
    "rich": "httpx's command line",
    "yaml": "provisioning and `edgefed up` only",
    "alembic": "not imported when the database is at head",
    "prometheus_client": "imported by a /metrics scrape only (api/metrics.py)",
    "edgefed.cli.up": "only its own command",
    "edgefed.cli.host": "only its own command",
    "edgefed.agent": "the host agent is another process",
    "difflib": "the suggestions for an unknown site's name only (core/scope_resolve.py)",
}

SCRIPT = r"""
import asyncio, gc, json, sys
from pathlib import Path
from typing import Any

from edgefed.cli import serve  # first: the blocks and defaults `edgefed site serve` sets

serve.uvicorn_server()
from fastapi.routing import APIRoute
from pydantic import BaseModel

from edgefed.testkit.auth import password_auth
from edgefed.testkit.inprocess import ADMIN_PASSWORD, run_site, site_settings


async def session(data_dir: Path) -> list[int]:
    statuses = []
    async with run_site(site_settings(data_dir)) as site:
        r = await site.client.post(
            "/identity/v3/auth/tokens", json=password_auth("admin", ADMIN_PASSWORD)
        )
        statuses.append(r.status_code)
        headers = {"X-Auth-Token": r.headers["x-subject-token"]}
        for path in (
            "/identity/v3/auth/catalog",
            "/identity/v3/projects",
            "/image/v2/images",
            "/compute/v2.1/flavors",
            "/compute/v2.1/servers/detail",
            "/network/v2.0/networks",
        ):
            statuses.append((await site.client.get(path, headers=headers)).status_code)
        served = {id(route) for route in site.app.routes}
        asked.extend(
            route.path for route in site.app.routes
            if isinstance(route, APIRoute) and "dependant" in vars(route)
        )
        built.extend(
            f"{route.endpoint.__module__}: {route.path}"
            for route in gc.get_objects()
            if isinstance(route, APIRoute) and "dependant" in vars(route)
            and id(route) not in served
        )
    return statuses


built: list[str] = []  # FastAPI routes built (their endpoints analysed) but not served
asked: list[str] = []  # the app's routes built: the ones the session asked for
statuses = asyncio.run(session(Path(sys.argv[1])))
loaded = sorted(name for name, module in sys.modules.items() if module is not None)
models = [cls for cls in gc.get_objects() if isinstance(cls, type) and issubclass(cls, BaseModel)]
unbuilt = sorted(f"{m.__module__}.{m.__qualname__}" for m in models if not m.__pydantic_complete__)
print(json.dumps({"statuses": statuses, "modules": loaded, "built": built, "asked": asked,
                  "unbuilt_models": unbuilt}))
"""


def _session(data_dir: Path) -> dict[str, list[Any]]:
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report: dict[str, list[Any]] = json.loads(run.stdout.strip().splitlines()[-1])
    assert all(200 <= s < 300 for s in report["statuses"]), report["statuses"]
    return report


def test_a_running_site_does_not_import_what_it_does_not_use(tmp_path: Path) -> None:
    _session(tmp_path / "site")  # the first start creates and migrates the database
    report = _session(tmp_path / "site")  # a restart, as an idle site is measured
    loaded = set(report["modules"])
    found = {
        name: why
        for name, why in NOT_LOADED.items()
        if any(m == name or m.startswith(name + ".") for m in loaded)
    }
    assert not found, f"a running site imported: {found}"


# Routes a site builds besides the ones it serves: compute's version documents, added
# to a plain router in its ``build()`` (each costs ≈ 7 KiB).
BUILT_NOT_SERVED = {"edgefed.services.compute.service: ", "edgefed.services.compute.service: /"}


def test_a_running_site_builds_each_route_once(tmp_path: Path) -> None:
    """Services declare their routes (api/service.py, ``DeclaredRoute``) and ``mount``
    builds each once, the app's: built twice (three times for the volume API's) they
    cost an idle site 2.4 MiB (docs/bench.md)."""
    report = _session(tmp_path / "site")
    built = set(report["built"]) - BUILT_NOT_SERVED
    assert not built, f"routes built and not served: {sorted(built)[:20]}"


def test_a_running_site_builds_the_routes_it_served_only(tmp_path: Path) -> None:
    """The app's routes are mounted declared and built by their first request
    (api/service.py, ``mount``): built at start, the ≈ 350 routes cost an idle site
    1.8 MiB (docs/bench.md)."""
    report = _session(tmp_path / "site")
    asked = set(report["asked"])
    assert "/identity/v3/auth/tokens" in asked and "/image/v2/images" in asked
    assert len(asked) <= 10, sorted(asked)


def test_a_running_site_builds_the_pydantic_models_it_used_only(tmp_path: Path) -> None:
    """``edgefed site serve`` defers building pydantic models to their first use
    (cli/serve.py, ``defer_model_builds``): FastAPI's OpenAPI models and edgefed's
    request bodies cost an idle site 2 MiB built (docs/bench.md)."""
    unbuilt = set(_session(tmp_path / "site")["unbuilt_models"])
    assert "fastapi.openapi.models.OpenAPI" in unbuilt
    assert "edgefed.services.identity.schemas.UserCreate" in unbuilt


def test_site_serve_builds_its_own_command_only() -> None:
    """``edgefed site serve`` parses its command line with the other ``site``
    subcommands left out: drain's module imports the operator client and the hosts
    command (cli/main.py)."""
    script = (
        "import json, sys\n"
        "from edgefed.cli import main\n"
        "main.build_parser(['site', 'serve', '--config', 'site.toml'])\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('edgefed.cli'))))"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-3000:]
    loaded = set(json.loads(run.stdout))
    assert loaded <= {"edgefed.cli", "edgefed.cli.main", "edgefed.cli.serve"}, sorted(loaded)


AGENT_NOT_LOADED = {
    "sqlalchemy": "the agent has no database; drivers/__init__.py names the store for types only",
    "pycdlib": "imported by a spawn that writes a config drive (drivers/qemu/configdrive.py)",
    "rich": "httpx's command line, blocked in cli/main.py for every command",
    "click": "httpx's command line, blocked in cli/main.py for every command",
    "fastapi": "the agent serves no HTTP",
}

AGENT_SCRIPT = r"""
import importlib, json, pkgutil, sys

from edgefed.cli import main  # the entry point of `edgefed host agent`

main.build_parser(["host", "agent"])
import edgefed.agent

for info in pkgutil.iter_modules(edgefed.agent.__path__, "edgefed.agent."):
    importlib.import_module(info.name)
loaded = sorted(name for name, module in sys.modules.items() if module is not None)
print(json.dumps(loaded))
"""


def test_an_idle_host_agent_does_not_import_what_it_does_not_use() -> None:
    run = subprocess.run(
        [sys.executable, "-c", AGENT_SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-3000:]
    loaded = set(json.loads(run.stdout.strip().splitlines()[-1]))
    found = {
        name: why
        for name, why in AGENT_NOT_LOADED.items()
        if any(m == name or m.startswith(name + ".") for m in loaded)
    }
    assert not found, f"the host agent imported: {found}"


def test_a_qemu_site_imports_the_plan_side_of_hostnet_only() -> None:
    """A site with the qemu driver builds its agents' network plans (the modules the
    agent channel imports, below); wiring them is the agent's (hostnet/__init__.py)."""
    script = (
        "import json, sys\n"
        "import edgefed.drivers.agent_network, edgefed.drivers.planwire\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('edgefed.drivers'))))"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-3000:]
    loaded = set(json.loads(run.stdout))
    agent_side = {"site", "ruleset", "devices", "dhcp", "preflight", "run"}
    found = sorted(m for m in loaded if m.rpartition(".")[2] in agent_side and ".hostnet." in m)
    assert not found, f"a site imported the agent's side of hostnet: {found}"


def _rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


def test_password_logins_leave_no_memory_behind(tmp_path: Path) -> None:
    """A password check (argon2) takes 19 MiB. From the second one on (the first is the
    admin's password, hashed by a new site's first start), glibc kept them in the
    checking thread's heap, and an idle site stayed 19 MiB larger; now the site hands
    them back a second after the last check (core/heap.py)."""
    site = SiteProcess(name="Logins", data_dir=tmp_path / "site")
    site.start()
    try:
        assert site.proc is not None
        time.sleep(1)
        idle = _rss_mib(site.proc.pid)
        body = password_auth("admin", site.password)
        with httpx.Client(base_url=site.url, timeout=60) as client:
            for _ in range(3):  # a burst: each check takes the memory the last one freed
                assert client.post("/identity/v3/auth/tokens", json=body).status_code == 201
        time.sleep(2.5)
        after = _rss_mib(site.proc.pid)
    finally:
        site.stop()
    assert after - idle < 8, f"{idle:.1f} MiB idle after start, {after:.1f} after three logins"
