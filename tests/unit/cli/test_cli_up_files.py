"""What ``edgefed up`` keeps in its directory between runs, and checks before starting:
the admin password (made once, private), each site's port (kept when still free, so
the registries of a second run still name the right endpoints), the join token, the
TLS settings, the clouds.yaml that openstacksdk reads, a directory's mode (with or
without --tls), and the ``--rtt`` it accepts."""

from __future__ import annotations

import argparse
import asyncio
import socket
import ssl
import sys
import tomllib
from pathlib import Path

import pytest
from openstack.config import loader

from edgefed.cli import up
from edgefed.cli.main import build_parser
from edgefed.cli.up_config import mode_mismatch, set_join_token, site_config
from edgefed.core.localca import ensure_local_ca
from edgefed.core.settings import load_settings


def args(**values: object) -> argparse.Namespace:
    base = {"base_port": 0, "host": "127.0.0.1", "rtt": None, "compute_driver": "fake"}
    return argparse.Namespace(**{**base, **values})


def toml(path: Path) -> dict[str, object]:
    return tomllib.loads(path.read_text())


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.mark.parametrize(("given", "rtt"), [("50ms", 50.0), (" 12.5 MS ", 12.5), ("0", 0.0)])
def test_rtt_takes_milliseconds(given: str, rtt: float) -> None:
    assert build_parser().parse_args(["up", "--rtt", given]).rtt == rtt


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ("fast", "--rtt takes milliseconds, e.g. 50ms (got 'fast')"),
        ("-1", "--rtt must be between 0 and 10000 ms"),
        ("10001", "--rtt must be between 0 and 10000 ms"),
    ],
)
def test_rtt_refuses_what_is_no_delay(
    given: str, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(["up", f"--rtt={given}"])
    assert stopped.value.code == 2
    assert words in capsys.readouterr().err


def test_the_admin_password_is_made_once_and_kept_private(tmp_path: Path) -> None:
    password = up._password(tmp_path)
    path = tmp_path / "admin-password"
    assert len(password) >= 16 and path.read_text() == password + "\n"
    assert mode(path) == 0o600
    path.chmod(0o644)  # loosened by hand: tightened again on the next run
    assert up._password(tmp_path) == password
    assert mode(path) == 0o600


def test_a_sites_port_is_kept_across_runs_while_it_is_free(tmp_path: Path) -> None:
    first = toml(site_config(tmp_path, "Berlin", 0, args()))["port"]
    assert isinstance(first, int) and first > 0
    assert toml(site_config(tmp_path, "Berlin", 0, args()))["port"] == first
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", first))
        taken.listen()
        moved = toml(site_config(tmp_path, "Berlin", 0, args()))["port"]
    assert moved != first


def test_a_base_port_numbers_the_sites_in_order(tmp_path: Path) -> None:
    ports = [toml(site_config(tmp_path, n, i, args(base_port=7101)))["port"]
             for i, n in enumerate(("Berlin", "Denver", "Paris"))]  # fmt: skip
    assert ports == [7101, 7102, 7103]


def test_the_join_token_goes_in_the_site_table_and_replaces_the_last(tmp_path: Path) -> None:
    path = site_config(tmp_path, "Denver", 1, args(base_port=7101))
    set_join_token(path, "first")
    set_join_token(path, "second")
    assert path.read_text().count("join_token =") == 1
    assert mode(path) == 0o600
    settings = load_settings(path, {"admin_password": "x"})
    assert settings.join_token == "second"
    assert settings.location.country  # the [location] table is still read as one


def test_a_tls_site_serves_a_certificate_of_the_fleet_ca(tmp_path: Path) -> None:
    ca = ensure_local_ca(tmp_path / "tls")
    path = site_config(tmp_path, "Paris", 2, args(base_port=7101), ca=ca)
    settings = load_settings(path, {"admin_password": "x"})
    assert settings.tls and settings.tls_cert_file and settings.tls_key_file
    assert mode(Path(settings.tls_key_file)) == 0o600
    context = ssl.create_default_context(cafile=str(ca.cert_file))
    context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)  # a matching pair


def test_a_directory_is_started_again_only_in_its_first_mode(tmp_path: Path) -> None:
    assert mode_mismatch(tmp_path, ["Berlin"], tls=True) is None  # nothing there yet
    site_config(tmp_path, "Berlin", 0, args(base_port=7101))
    assert mode_mismatch(tmp_path, ["Berlin"], tls=False) is None
    why = mode_mismatch(tmp_path, ["Berlin"], tls=True)
    assert why is not None
    assert "started without --tls" in why and "http:// endpoints" in why


def test_up_refuses_tls_with_real_guests_before_starting_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["up", "--dir", str(tmp_path / "fleet"), "--tls", "--compute-driver", "qemu"]
    assert up.run(build_parser().parse_args(argv)) == 2
    assert "--tls with real guests is not supported yet" in capsys.readouterr().err
    assert not (tmp_path / "fleet" / "berlin").exists()


def running(name: str, url: str) -> up.RunningSite:
    return up.RunningSite(name=name, url=url, process=None)  # type: ignore[arg-type]


def test_clouds_yaml_gives_openstacksdk_one_cloud_per_site(tmp_path: Path) -> None:
    ca = ensure_local_ca(tmp_path / "tls")
    sites = [
        running("Berlin", "https://127.0.0.1:7001"),
        running("Paris", "https://127.0.0.1:7003"),
    ]
    path = up._clouds_yaml(tmp_path, sites, "s3cret", ca)
    assert mode(path) == 0o600
    config = loader.OpenStackConfig(config_files=[str(path)], load_envvars=False)
    paris = config.get_one(cloud="paris")
    assert paris.config["auth"]["auth_url"] == "https://127.0.0.1:7003/identity/v3"
    assert paris.config["auth"]["password"] == "s3cret"
    assert paris.region_name == "Paris"
    assert paris.config["cacert"] == str(ca.cert_file.resolve())
    assert sorted(c.name for c in config.get_all()) == ["berlin", "paris"]


async def test_stopping_the_fleet_ends_every_site_that_still_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def process(code: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(sys.executable, "-c", code)

    done = await process("pass")
    await done.wait()
    waiting = await process("import time\nwhile True: time.sleep(1)")
    sites = [up.RunningSite("Berlin", "", done), up.RunningSite("Denver", "", waiting)]
    await up._stop_all(sites)
    assert waiting.returncode == -15  # SIGTERM: a site stops cleanly on it
    assert capsys.readouterr().out.split("\n")[:2] == ["  stopped Berlin", "  stopped Denver"]
