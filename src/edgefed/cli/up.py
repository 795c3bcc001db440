"""``edgefed up``: a local fleet for trying things out (``make run``).

Starts one ``edgefed site serve`` process per site (default Berlin, Denver, Paris) on
loopback, each with its own data directory and SQLite database, writes a
``clouds.yaml`` with one cloud per site, prints how to use them, and stops every site
cleanly on Ctrl-C or SIGTERM. State is kept in ``--dir`` across runs, and so are the
generated admin password and, when free, the ports each site and its WAN link
(``--rtt``) had: the sites' registries hold them.

``--tls``: every site serves HTTPS. Sites pin each other's registry keys (api/tls.py);
clients see a certificate from a small CA made in ``<dir>/tls`` (``ca.pem``), which the
generated ``clouds.yaml`` trusts (``cacert:``). A directory keeps the mode it was first
started in: its registries name ``http://`` or ``https://`` endpoints.

Everything written here is private: the directory and each site's 0700; clouds.yaml,
site.toml, the password, keys and certificates 0600.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from edgefed.cli.serve import READY_PREFIX
from edgefed.cli.up_config import (
    choose_driver,
    mode_mismatch,
    private_dir,
    set_join_token,
    site_config,
)
from edgefed.cli.up_seed import seed_images
from edgefed.core.files import write_private
from edgefed.core.localca import LocalCA, ensure_local_ca

if TYPE_CHECKING:
    # Imported only when --rtt asks for the emulator.
    pass

READY_TIMEOUT = 60.0


@dataclass
class RunningSite:
    name: str
    url: str
    process: asyncio.subprocess.Process


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", type=Path, default=Path("fleet"), help="fleet state directory")
    parser.add_argument("--sites", default="Berlin,Denver,Paris", help="comma-separated names")
    parser.add_argument(
        "--base-port", type=int, default=7001, help="first port (0: pick free ports)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--rtt",
        type=_rtt,
        default=None,
        metavar="MS",
        help="put an emulated WAN link with this RTT (e.g. 50ms) in front of every site: "
        "inter-site traffic crosses it",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="serve HTTPS: sites pin each other's keys; clients trust a local CA (clouds.yaml)",
    )
    parser.add_argument(
        "--compute-driver",
        choices=("fake", "qemu", "auto"),
        default="fake",
        help="fake: simulated guests; qemu: real guests (QEMU) through a host agent each "
        "site starts for this machine; auto: qemu when this machine can (make run)",
    )


def _rtt(text: str) -> float:
    value = text.strip().lower().removesuffix("ms").strip()
    try:
        rtt = float(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"--rtt takes milliseconds, e.g. 50ms (got {text!r})"
        ) from exc
    if not 0 <= rtt <= 10_000:
        raise argparse.ArgumentTypeError("--rtt must be between 0 and 10000 ms")
    return rtt


def _password(directory: Path) -> str:
    path = directory / "admin-password"
    if path.exists():
        os.chmod(path, 0o600)
        return path.read_text().strip()
    password = secrets.token_urlsafe(12)
    write_private(path, password + "\n")
    return password


async def _enrollment_tokens(
    first: RunningSite, password: str, names: list[str], ca: LocalCA | None
) -> list[str]:
    """Log in to the first site as admin and mint one-time enrollment tokens."""
    async with httpx.AsyncClient(base_url=first.url, timeout=30.0, verify=_verify(ca)) as http:
        r = await http.post(
            "/identity/v3/auth/tokens",
            json={
                "auth": {
                    "identity": {
                        "methods": ["password"],
                        "password": {
                            "user": {
                                "name": "admin",
                                "domain": {"id": "default"},
                                "password": password,
                            }
                        },
                    },
                    "scope": {"project": {"name": "admin", "domain": {"id": "default"}}},
                }
            },
        )
        r.raise_for_status()
        headers = {"X-Auth-Token": r.headers["x-subject-token"]}
        tokens = []
        for name in names:
            body = {"enrollment": {"name": name}}
            e = await http.post("/edge/v1/fleet/enrollments", headers=headers, json=body)
            e.raise_for_status()
            tokens.append(e.json()["enrollment"]["token"])
        return tokens


async def _start(name: str, config: Path, password: str) -> RunningSite:
    env = dict(os.environ, EDGEFED_ADMIN_PASSWORD=password)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edgefed.cli.main",
        "site",
        "serve",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    async with asyncio.timeout(READY_TIMEOUT):
        while True:
            line = (await proc.stdout.readline()).decode()
            if not line:
                raise RuntimeError(f"site {name} exited before it was ready")
            if line.startswith(READY_PREFIX):
                url = line.split("url=", 1)[1].split()[0].strip()
                return RunningSite(name=name, url=url, process=proc)


def _verify(ca: LocalCA | None) -> ssl.SSLContext | bool:
    return ssl.create_default_context(cafile=str(ca.cert_file)) if ca is not None else True


def _clouds_yaml(
    directory: Path, sites: list[RunningSite], password: str, ca: LocalCA | None
) -> Path:
    clouds = {
        "clouds": {
            s.name.lower(): {
                "auth": {
                    "auth_url": f"{s.url}/identity/v3",
                    "username": "admin",
                    "password": password,
                    "project_name": "admin",
                    "user_domain_name": "Default",
                    "project_domain_name": "Default",
                },
                "region_name": s.name,
                "identity_api_version": 3,
                "interface": "public",
                **({"cacert": str(ca.cert_file.resolve())} if ca is not None else {}),
            }
            for s in sites
        }
    }
    import yaml  # here: every ``edgefed`` process, a site's included, imports this module

    path = (directory / "clouds.yaml").resolve()
    write_private(path, yaml.safe_dump(clouds, sort_keys=False))
    return path


async def _up(args: argparse.Namespace) -> int:
    names = [n.strip() for n in args.sites.split(",") if n.strip()]
    directory: Path = private_dir(args.dir)
    mismatch = mode_mismatch(directory, names, args.tls)
    if mismatch is not None:
        print(f"edgefed up: {mismatch}", file=sys.stderr)
        return 2
    args.compute_driver, fallback = choose_driver(args.compute_driver)
    if fallback is not None:
        print(f"edgefed up: simulated guests (fake driver): {fallback}", file=sys.stderr)
    if args.tls and args.compute_driver == "qemu":
        print("edgefed up: --tls with real guests is not supported yet", file=sys.stderr)
        return 2
    password = _password(directory)
    ca = ensure_local_ca(private_dir(directory / "tls")) if args.tls else None
    wan = None
    if args.rtt is not None:
        from edgefed.wan import Wan

        wan = Wan().start()
    configs = [site_config(directory, n, i, args, wan, ca) for i, n in enumerate(names)]
    # The first site starts alone; it enrolls the others, which join it as they start.
    results: list[RunningSite | BaseException] = list(
        await asyncio.gather(_start(names[0], configs[0], password), return_exceptions=True)
    )
    if isinstance(results[0], RunningSite) and len(names) > 1:
        try:
            tokens = await _enrollment_tokens(results[0], password, names[1:], ca)
            for config, token in zip(configs[1:], tokens, strict=True):
                set_join_token(config, token)
        except (httpx.HTTPError, KeyError) as exc:
            print(f"edgefed up: could not enroll the other sites ({exc})", file=sys.stderr)
        results += await asyncio.gather(
            *(_start(n, c, password) for n, c in zip(names[1:], configs[1:], strict=True)),
            return_exceptions=True,
        )
    sites = [r for r in results if isinstance(r, RunningSite)]
    failures = [r for r in results if isinstance(r, BaseException)]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        if failures:
            for f in failures:
                print(f"edgefed up: {f}", file=sys.stderr)
            return 1
        clouds = _clouds_yaml(directory, sites, password, ca)
        print("\nedgefed fleet is up (one fleet: each site trusts the others' tokens):\n")
        for s in sites:
            print(f"  {s.name:<8} {s.url}   identity: {s.url}/identity/v3")
        if wan is not None:
            print(f"\n  sites reach each other over emulated WAN links of {args.rtt:g} ms RTT")
        if ca is not None:
            print(
                "\n  TLS: sites pin each other's keys; clients trust the fleet's CA "
                f"{ca.cert_file.resolve()}\n  (clouds.yaml says so; for `edgefed` commands: "
                f"export SSL_CERT_FILE={ca.cert_file.resolve()})"
            )
        # Every site gets the tiny guest image (cli/up_seed.py), when it was built.
        seeded = await seed_images(
            [(s.name, s.url) for s in sites], password=password, verify=_verify(ca)
        )
        print("", *(f"  {line}" for line in seeded), sep="\n")
        print(f"\n  admin user: admin   password: {password}   project: admin")
        print(f"  dashboard:  {sites[0].url}/dashboard")
        print(f"  clouds.yaml: {clouds}\n")
        print("Try:")
        print(f"  export OS_CLIENT_CONFIG_FILE={clouds}")
        print(f"  openstack --os-cloud {sites[0].name.lower()} token issue")
        print(f"  openstack --os-cloud {sites[0].name.lower()} server list\n")
        if args.compute_driver == "qemu":
            print("  guests are real (QEMU): each site runs a host agent for this machine;")
            print("  Ctrl-C leaves them running, the next `edgefed up` adopts them\n")
        print("Ctrl-C stops every site.", flush=True)
        waiters = [asyncio.create_task(s.process.wait()) for s in sites]
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([stopper, *waiters], return_when=asyncio.FIRST_COMPLETED)
        if stopper not in done:
            print("edgefed up: a site exited; stopping the others", file=sys.stderr)
        for t in (stopper, *waiters):
            t.cancel()
        return 0
    finally:
        await _stop_all(sites)
        if wan is not None:
            wan.stop()


async def _stop_all(sites: list[RunningSite]) -> None:
    for s in sites:
        if s.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                s.process.send_signal(signal.SIGTERM)
    for s in sites:
        try:
            async with asyncio.timeout(15):
                await s.process.wait()
        except TimeoutError:
            s.process.kill()
            await s.process.wait()
        print(f"  stopped {s.name}", flush=True)


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_up(args))
