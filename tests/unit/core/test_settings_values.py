"""Site settings: built once from a TOML file and overrides, every rule checked when the
value is made, and the few things derived from them."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from edgefed.core.errors import ValidationFailed
from edgefed.core.settings import (
    HostSpec,
    Location,
    MappingSpec,
    SiteSettings,
    fleet_admin_mappings,
    load_settings,
    mapping_toml,
)


def settings(tmp_path: Path, **values: Any) -> SiteSettings:
    return SiteSettings(
        **{"name": "Berlin", "data_dir": tmp_path, "admin_password": "pw", **values}
    )


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.toml"
    path.write_text('name = "Berlin"\ndata_dir = "/srv/berlin"\nadmin_password = "pw"\n' + text)
    return path


def test_a_full_config_file_is_read_into_typed_values(tmp_path: Path) -> None:
    path = config(
        tmp_path,
        'labels = { tier = 1, region = "eu" }\n'
        "sync_backoff_seconds = [1.0, 2.0]\n"
        'sync_accept = ["@tier=edge", "Denver"]\n'
        '[location]\nlat = 52.5\nlon = 13.4\ncountry = "DE"\n'
        '[[compute_hosts]]\nname = "b1"\nvcpus = 8\n'
        '[[compute_hosts]]\nname = "b2"\n'
        '[[mapping]]\nsite = "Paris"\nrole = "member"\nproject = "research"\n',
    )
    s = load_settings(path)
    assert s.data_dir == Path("/srv/berlin")
    assert s.labels == {"tier": "1", "region": "eu"}  # label values are text
    assert s.location == Location(lat=52.5, lon=13.4, country="DE")
    assert s.hosts == (HostSpec(name="b1", vcpus=8), HostSpec(name="b2"))
    assert s.mapping == (MappingSpec(site="Paris", role="member", project="research"),)
    assert list(s.sync_accept) == ["@tier=edge", "Denver"]
    assert list(s.sync_backoff_seconds) == [1.0, 2.0]


def test_overrides_win_and_none_means_not_given(tmp_path: Path) -> None:
    path = config(tmp_path, "port = 5001\n")
    s = load_settings(path, {"port": 6001, "public_url": None, "log_level": "debug"})
    assert (s.port, s.public_url, s.log_level) == (6001, None, "debug")
    assert load_settings(
        None, {"name": "Paris", "data_dir": "~/p", "admin_password": "x"}
    ).data_dir == (Path("~/p").expanduser())


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        ("nonsense = 1\nother = 2\n", "nonsense", "unknown setting(s): nonsense, other"),
        ("[location]\naltitude = 3\n", None, "bad setting"),
        ("[[compute_hosts]]\nvcpus = 3\n", None, "bad setting"),
        ("port = -1\n", "port", "out of range"),
        ('sqlite_synchronous = "OFF"\n', "sqlite_synchronous", "FULL, NORMAL or EXTRA"),
        ("lockout_failure_attempts = -1\n", "lockout_failure_attempts", "0 or more"),
        ("password_check_concurrency = 0\n", "password_check_concurrency", "1 or more"),
        ("lockout_duration = 0\n", "lockout_duration", "above 0"),
        ('tls_cert_file = "c.pem"\n', "tls_cert_file", "needs tls = true"),
        ('tls = true\ntls_key_file = "k.pem"\n', "tls_key_file", "needs tls_cert_file"),
        ('volume_export_ports = "20115-20100"\n', "volume_export_ports", "first-last"),
        ('volume_export_ports = "20100-70000"\n', "volume_export_ports", "within 1-65535"),
        ('volume_export_ports = "0"\n', "volume_export_ports", "'0'"),
        ('volume_export_ports = "20100:20115"\n', "volume_export_ports", "'20100:20115'"),
        ('volume_export_ports = "nbd"\n', "volume_export_ports", 'like "20100-20115"'),
        ("volume_export_ports = [20100, 20115]\n", "volume_export_ports", "[20100, 20115]"),
        (
            'tls = true\npublic_url = "http://berlin.example"\n',
            "public_url",
            "must be https:// on a TLS site",
        ),
    ],
)
def test_a_bad_value_names_the_setting(
    tmp_path: Path, text: str, field: str | None, message: str
) -> None:
    with pytest.raises(ValidationFailed, match=re.escape(message)) as info:
        load_settings(config(tmp_path, text))
    if field is not None:
        assert info.value.field == field


@pytest.mark.parametrize(
    ("value", "ports"),
    [
        ('"20100-20115"', range(20100, 20116)),
        ('" 20100 - 20101 "', range(20100, 20102)),
        ('"20100"', range(20100, 20101)),
        ("20100", range(20100, 20101)),  # a TOML integer: one port
        ('"1-65535"', range(1, 65536)),
    ],
)
def test_volume_exports_may_have_a_fixed_port_range(
    tmp_path: Path, value: str, ports: range
) -> None:
    s = load_settings(config(tmp_path, f"volume_export_ports = {value}\n"))
    assert s.volume_export_port_range == ports
    assert load_settings(config(tmp_path, "")).volume_export_port_range is None  # any port


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed, match="cannot read config file"):
        load_settings(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("name = ")
    with pytest.raises(ValidationFailed, match="bad.toml"):
        load_settings(tmp_path / "bad.toml")


@pytest.mark.parametrize("name", ["Berlin", "b", "eu-west.1_a", "A" + "b" * 62])
def test_site_names_that_are_fine(tmp_path: Path, name: str) -> None:
    assert settings(tmp_path, name=name).name == name


@pytest.mark.parametrize("name", ["", "1abc", "-x", "a b", "Berlin\n", "A" * 64, "ber/lin"])
def test_site_names_that_are_not(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValidationFailed, match="must start with a letter") as info:
        settings(tmp_path, name=name)
    assert info.value.field == "name"


def test_settings_are_frozen(tmp_path: Path) -> None:
    s = settings(tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.port = 1  # type: ignore[misc]


def test_the_database_is_sqlite_in_the_data_directory_unless_given(tmp_path: Path) -> None:
    assert settings(tmp_path).effective_database_url == f"sqlite:///{tmp_path / 'site.db'}"
    url = "postgresql+asyncpg://u@db/berlin"
    assert settings(tmp_path, database_url=url).effective_database_url == url


def test_a_site_without_hosts_has_one_named_after_it(tmp_path: Path) -> None:
    assert settings(tmp_path, name="Paris").hosts == (HostSpec(name="paris-compute-1"),)


def test_the_port_once_known_gives_the_public_url_unless_one_was_set(tmp_path: Path) -> None:
    plain = settings(tmp_path, host="10.0.0.1").with_port(5001)
    assert (plain.port, plain.public_url) == (5001, "http://10.0.0.1:5001")
    tls = settings(tmp_path, tls=True).with_port(443)
    assert tls.public_url == "https://127.0.0.1:443"
    fixed = settings(tmp_path, public_url="https://berlin.example", tls=True).with_port(8443)
    assert (fixed.port, fixed.public_url) == (8443, "https://berlin.example")


def test_mapping_rules_round_trip_through_a_config_line(tmp_path: Path) -> None:
    rules = (
        *fleet_admin_mappings(),
        MappingSpec(site="Paris", role="member", user='al"ice', project="research"),
        MappingSpec(site="*", role="reader", user_domain="Ops", domain="Ops"),
    )
    line = mapping_toml(rules)
    assert line.startswith("mapping = [{ ") and line.endswith("}]\n")
    assert "system = true" in line and "system = false" not in line
    assert tomllib.loads(line)["mapping"][0] == {
        "site": "*",
        "role": "admin",
        "user_domain": "Default",
        "user": "admin",
        "project": "admin",
    }
    path = config(tmp_path, line)
    assert load_settings(path).mapping == rules


def test_the_fleet_admin_rules_make_every_sites_admin_an_admin_here() -> None:
    project, system = fleet_admin_mappings()
    assert (project.site, project.user, project.role, project.project) == (
        "*",
        "admin",
        "admin",
        "admin",
    )
    assert system.system and system.project is None
    assert fleet_admin_mappings("ops", "infra")[0].project == "infra"
