"""Predictable IDs and settings validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgefed.core.errors import ValidationFailed
from edgefed.core.ids import domain_id_for, predictable_id
from edgefed.core.settings import load_settings


def test_predictable_ids_are_stable_and_distinct() -> None:
    assert predictable_id("user", "alice") == predictable_id("user", "alice")
    assert predictable_id("user", "alice") != predictable_id("project", "alice")
    assert predictable_id("user", "alice") != predictable_id("user", "alice", domain_id="d2")
    assert len(predictable_id("user", "alice")) == 32
    assert domain_id_for("Default") == "default"
    assert domain_id_for("default") == "default"
    # Pinned: the same name must give the same ID on every site, in every release.
    assert predictable_id("user", "admin") == predictable_id("user", "admin", domain_id="default")


def test_load_settings_from_file_and_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "site.toml"
    cfg.write_text(
        'name = "Paris"\nport = 5003\ndata_dir = "/tmp/x"\nadmin_password = "p"\n'
        'labels = { region = "eu" }\n[location]\nlat = 48.8\nlon = 2.3\ncountry = "FR"\n'
    )
    s = load_settings(cfg, {"port": 6000, "host": None})
    assert (s.name, s.port, s.labels["region"], s.location.country) == ("Paris", 6000, "eu", "FR")
    assert s.effective_database_url.startswith("sqlite:////tmp/x/")


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ('name = "Paris"\ndata_dir = "/x"\n', "admin_password"),
        ('name = "1bad"\ndata_dir = "/x"\nadmin_password = "p"\n', "name"),
        ('name = "P"\ndata_dir = "/x"\nadmin_password = "p"\nbogus = 1\n', "bogus"),
        ('name = "P"\ndata_dir = "/x"\nadmin_password = "p"\nport = 70000\n', "port"),
        ("name = [", None),
    ],
)
def test_bad_settings_name_the_problem(tmp_path: Path, content: str, field: str | None) -> None:
    cfg = tmp_path / "site.toml"
    cfg.write_text(content)
    with pytest.raises(ValidationFailed) as info:
        load_settings(cfg)
    if field:
        assert field in str(info.value)
