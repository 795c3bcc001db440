"""The site configs of ``edgefed up``: one ``site.toml`` per site of the try-out fleet.

Each site gets a private directory, its port (the one it had last time when free: the
sites' registries hold them), its WAN link (``--rtt``), its TLS files (``--tls``), its
location, the fleet's admin mapping and its compute driver (``--compute-driver``:
``qemu`` runs real guests through a host agent the site starts for this machine).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from edgefed.core.files import write_private
from edgefed.core.localca import LocalCA, issue_server_certificate
from edgefed.core.settings import fleet_admin_mappings, mapping_toml

if TYPE_CHECKING:
    from edgefed.wan import Wan

DEFAULT_SITES = {
    "Berlin": {"lat": 52.520, "lon": 13.405, "country": "DE", "region": "eu"},
    "Denver": {"lat": 39.739, "lon": -104.990, "country": "US", "region": "us"},
    "Paris": {"lat": 48.857, "lon": 2.352, "country": "FR", "region": "eu"},
}


def private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def mode_mismatch(directory: Path, names: list[str], tls: bool) -> str | None:
    """Why this directory cannot be started with(out) ``--tls``, if it cannot: its
    registries hold the other scheme's endpoints, which no site would serve any more."""
    for name in names:
        try:
            last = tomllib.loads((directory / name.lower() / "site.toml").read_text())
        except (OSError, tomllib.TOMLDecodeError):
            continue
        if bool(last.get("tls", False)) != tls:
            was = "with" if not tls else "without"
            return (
                f"{directory} holds a fleet started {was} --tls (its registries name "
                f"{'https' if not tls else 'http'}:// endpoints); start it the same way, "
                "or use another --dir"
            )
    return None


def site_config(
    directory: Path,
    name: str,
    index: int,
    args: argparse.Namespace,
    wan: Wan | None = None,
    ca: LocalCA | None = None,
) -> Path:
    site_dir = private_dir((directory / name.lower()).resolve())
    path = site_dir / "site.toml"
    last_port, last_link_port = _last_ports(path)
    loc = DEFAULT_SITES.get(name, {"lat": 0.0, "lon": 0.0, "country": "", "region": ""})
    port = args.base_port + index if args.base_port else _pick_port(args.host, last_port)
    extra = []
    scheme = "https" if ca is not None else "http"
    if ca is not None:
        # What clients see (the CLI checks it against clouds.yaml's cacert); other sites
        # get the site-key certificate and pin the key.
        tls_dir = private_dir(directory.resolve() / "tls")
        cert, key = tls_dir / f"{name.lower()}.pem", tls_dir / f"{name.lower()}-key.pem"
        issue_server_certificate(
            ca,
            hosts=["127.0.0.1", "localhost", args.host],
            cert_file=cert,
            key_file=key,
            name=f"edgefed site {name}",
        )
        extra += ["tls = true", f'tls_cert_file = "{cert}"', f'tls_key_file = "{key}"']
    if wan is not None:
        from edgefed.wan import LinkProfile

        link = wan.add_link(
            server=name,
            target=(args.host, port),
            profile=LinkProfile(rtt_ms=args.rtt),
            listen_port=_pick_port("127.0.0.1", last_link_port),
        )
        extra.append(f'public_url = "{scheme}://127.0.0.1:{link.port}"')
    lines = [
        f'name = "{name}"',
        f'host = "{args.host}"',
        f"port = {port}",
        *extra,
        f'data_dir = "{site_dir}"',
        f'compute_driver = "{args.compute_driver}"',
        f'labels = {{ region = "{loc["region"]}" }}',
        # One operator for the whole try-out fleet: every site's admin is an admin here
        # (docs/fleet-trust.md: a real fleet maps only what it needs).
        mapping_toml(fleet_admin_mappings()).rstrip(),
        "",
        "[location]",
        f"lat = {loc['lat']}",
        f"lon = {loc['lon']}",
        f'country = "{loc["country"]}"',
        f'region = "{loc["region"]}"',
    ]
    write_private(path, "\n".join(lines) + "\n")
    return path


def _last_ports(config: Path) -> tuple[int, int]:
    """The port a site listened on and its WAN link's port, the last time it ran from
    this directory (0 when unknown).

    Every site's registry keeps the endpoints the others published; if all of them
    came back on new ports, none could reach another to tell it (a second
    ``edgefed up --rtt 50ms`` in one directory was a fleet of strangers).
    """
    try:
        last = tomllib.loads(config.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return 0, 0
    port = last.get("port")
    link_port = urlsplit(str(last.get("public_url", ""))).port
    return (port if isinstance(port, int) else 0), (link_port or 0)


def _pick_port(host: str, wanted: int) -> int:
    """``wanted`` if it is free to listen on, else any free port."""
    with socket.socket() as s:
        # As the site and the link bind: a port left in TIME_WAIT by the last run is free.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for port in (wanted, 0) if wanted else (0,):
            with contextlib.suppress(OSError):
                s.bind((host, port))
                return int(s.getsockname()[1])
    raise OSError(f"no free port on {host}")


def set_join_token(config: Path, token: str) -> None:
    lines = [ln for ln in config.read_text().splitlines() if not ln.startswith("join_token")]
    first_table = next((i for i, ln in enumerate(lines) if ln.startswith("[")), len(lines))
    head, tail = lines[:first_table], lines[first_table:]
    write_private(config, "\n".join([*head, f'join_token = "{token}"', *tail]) + "\n")


# What real guests need on this machine (the qemu driver's agent runs them here).
GUEST_TOOLS = ("qemu-system-x86_64", "qemu-img", "ip", "nft", "dnsmasq")


def choose_driver(requested: str) -> tuple[str, str | None]:
    """The compute driver for ``--compute-driver`` (``auto``: qemu when this machine can
    run guests, as root with QEMU and the network tools; fake otherwise), and why auto
    fell back to fake."""
    if requested != "auto":
        return requested, None
    if os.geteuid() != 0:
        return "fake", "real guests need root (network namespaces, taps)"
    missing = [tool for tool in GUEST_TOOLS if shutil.which(tool) is None]
    if missing:
        return "fake", f"real guests need {', '.join(missing)} (make system-deps)"
    return "qemu", None
