"""``edgefed up`` (what ``make run`` starts): three sites, clouds.yaml, clean stop."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import ssl
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from edgefed.cli.up_seed import tiny_guest
from edgefed.testkit.fleet_process import password_token
from edgefed.testkit.osc import openstack_binary

pytestmark = pytest.mark.e2e


def _port_open(url: str) -> bool:
    host, port = url.split("://", 1)[1].split(":")
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex((host, int(port))) == 0


@contextlib.contextmanager
def running_up(directory: Path, *options: str) -> Iterator[tuple[str, list[str]]]:
    """``edgefed up`` in ``directory`` until the block ends (SIGTERM, then a clean exit):
    its output once ready, and the lines it printed (they go on until it stops)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgefed.cli.main", "up", "--base-port", "0"]
        + ["--dir", str(directory), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("OS_")},
    )
    lines: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C stops every site" in line:
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    try:
        assert ready.wait(90), "".join(lines)
        yield "".join(lines), lines
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert code == 0, "".join(lines)


def site_urls(output: str) -> dict[str, str]:
    return dict(
        re.findall(r"^\s+(Berlin|Denver|Paris)\s+(https?://127\.0\.0\.1:\d+)", output, re.M)
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def assert_private(directory: Path) -> None:
    """What ``edgefed up`` and its sites wrote is the owner's only: dirs 0700, files 0600."""
    assert mode(directory) == 0o700
    assert mode(directory / "clouds.yaml") == 0o600
    for name in ("berlin", "denver", "paris"):
        site = directory / name
        assert mode(site) == 0o700 and mode(site / "keys") == 0o700
        for path in (site / "site.toml", site / "site.db", *(site / "keys").iterdir()):
            assert mode(path) == 0o600, path
        for suffix in ("-wal", "-shm"):
            wal = site / f"site.db{suffix}"
            assert not wal.exists() or mode(wal) == 0o600, wal


def test_up_starts_three_sites_and_stops_them(tmp_path: Path) -> None:
    with running_up(tmp_path) as (output, lines):
        urls = site_urls(output)
        assert set(urls) == {"Berlin", "Denver", "Paris"}, output
        password = re.search(r"password: (\S+)", output)
        assert password is not None
        assert "dashboard:" in output
        clouds = yaml.safe_load((tmp_path / "clouds.yaml").read_text())["clouds"]
        assert set(clouds) == {"berlin", "denver", "paris"}
        assert clouds["denver"]["auth"]["auth_url"] == f"{urls['Denver']}/identity/v3"
        assert clouds["paris"]["auth"]["password"] == password.group(1)
        for name, url in urls.items():
            body = httpx.get(f"{url}/", timeout=10).json()
            assert body["site"] == name
        # One fleet: a token issued by Berlin is accepted by Denver and Paris.
        token = password_token(urls["Berlin"], password.group(1))
        for name in ("Denver", "Paris"):
            r = httpx.get(
                f"{urls[name]}/edge/v1/fleet/sites", headers={"X-Auth-Token": token}, timeout=10
            )
            assert r.status_code == 200, r.text
            assert {s["name"] for s in r.json()["sites"]} >= {"Berlin", name}
        # Each site has its own data directory and database, private.
        for name in ("berlin", "denver", "paris"):
            assert (tmp_path / name / "site.db").exists()
        assert_private(tmp_path)
        # make run builds the tiny guest first: every site can boot it.
        if tiny_guest() is not None:
            for name, url in urls.items():
                assert f"{name}: image edgefed-tiny " in output
                token = password_token(url, password.group(1))
                r = httpx.get(
                    f"{url}/image/v2/images?name=edgefed-tiny",
                    headers={"X-Auth-Token": token},
                    timeout=10,
                )
                (image,) = r.json()["images"]
                assert (image["status"], image["disk_format"]) == ("active", "qcow2")
                assert image["visibility"] == "public" and image["os_type"] == "linux"
    for url in urls.values():
        assert not _port_open(url), f"{url} still listening after edgefed up stopped"
    assert "stopped Berlin" in "".join(lines)


def test_up_again_over_wan_links_in_the_same_directory_is_still_one_fleet(
    tmp_path: Path,
) -> None:
    """The registries kept in the directory name the ports of the last run: every site
    and every link comes back on its port, or no site could reach another."""
    for run in range(2):
        with running_up(tmp_path, "--rtt", "50ms") as (output, _):
            urls = site_urls(output)
            password = re.search(r"password: (\S+)", output)
            assert password is not None
            token = password_token(urls["Berlin"], password.group(1))
            r = httpx.get(
                f"{urls['Berlin']}/compute/v2.1/flavors",
                headers={"X-Auth-Token": token, "X-Scope": "{compute: Denver}"},
                timeout=30,
            )
            assert r.status_code == 200, f"run {run + 1}: {r.text}"
            assert r.headers["x-edgefed-site"] == "Denver"


def test_up_tls_over_wan_links_pins_the_sites_and_the_cli_trusts_the_fleet_ca(
    tmp_path: Path,
) -> None:
    """``edgefed up --tls --rtt 50ms``: HTTPS everywhere, site-to-site pinned to the
    registry keys through the WAN links, and the generated clouds.yaml works unchanged."""
    with running_up(tmp_path, "--tls", "--rtt", "50ms") as (output, _):
        urls = site_urls(output)
        assert set(urls) == {"Berlin", "Denver", "Paris"}, output
        assert all(url.startswith("https://") for url in urls.values()), output
        assert f"dashboard:  {urls['Berlin']}/dashboard" in output
        password = re.search(r"password: (\S+)", output)
        assert password is not None
        clouds = yaml.safe_load((tmp_path / "clouds.yaml").read_text())["clouds"]
        ca = Path(clouds["berlin"]["cacert"])
        assert ca == (tmp_path / "tls" / "ca.pem").resolve()
        # The real openstack CLI, with nothing but the generated clouds.yaml.
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env["OS_CLIENT_CONFIG_FILE"] = str(tmp_path / "clouds.yaml")
        issued = subprocess.run(
            [openstack_binary(), "--os-cloud", "berlin", "token", "issue", "-f", "json"],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert issued.returncode == 0, issued.stderr
        # Berlin reaches Denver through Denver's WAN link, over TLS pinned by that origin.
        verify = ssl.create_default_context(cafile=str(ca))
        token = password_token(urls["Berlin"], password.group(1), verify=verify)
        r = httpx.get(
            f"{urls['Berlin']}/compute/v2.1/flavors",
            headers={"X-Auth-Token": token, "X-Scope": "{compute: Denver&Paris}"},
            timeout=30,
            verify=verify,
        )
        assert r.status_code == 200, r.text
        assert set(r.headers["x-edgefed-site"].split(",")) == {"Denver", "Paris"}, r.headers
        # Plain HTTP to a TLS site gets no answer.
        with pytest.raises(httpx.TransportError):
            httpx.get(urls["Denver"].replace("https://", "http://") + "/", timeout=10)
        assert_private(tmp_path)
        for path in (tmp_path / "tls").iterdir():
            assert mode(path) == 0o600, path
