"""``edgefed up``'s site configs: the compute driver chosen, written into site.toml."""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

import pytest

from edgefed.cli import up_config
from edgefed.cli.up_config import choose_driver, site_config
from edgefed.core.settings import load_settings


def args(**values: object) -> argparse.Namespace:
    base = {"base_port": 0, "host": "127.0.0.1", "rtt": None, "compute_driver": "fake"}
    return argparse.Namespace(**{**base, **values})


def test_the_driver_is_written_and_the_site_reads_it(tmp_path: Path) -> None:
    path = site_config(tmp_path, "Berlin", 0, args(compute_driver="qemu"))
    assert tomllib.loads(path.read_text())["compute_driver"] == "qemu"
    settings = load_settings(path, {"admin_password": "x"})
    assert settings.runs_local_agent and settings.local_agent_host == "berlin-local"


def test_auto_takes_qemu_only_where_guests_can_run(monkeypatch: pytest.MonkeyPatch) -> None:
    assert choose_driver("fake") == ("fake", None)
    assert choose_driver("qemu") == ("qemu", None)
    monkeypatch.setattr(up_config.os, "geteuid", lambda: 1000)
    driver, why = choose_driver("auto")
    assert driver == "fake" and why is not None and "root" in why
    monkeypatch.setattr(up_config.os, "geteuid", lambda: 0)
    monkeypatch.setattr(up_config.shutil, "which", lambda tool: None if tool == "nft" else tool)
    driver, why = choose_driver("auto")
    assert driver == "fake" and why is not None and "nft" in why
    monkeypatch.setattr(up_config.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    assert choose_driver("auto") == ("qemu", None)
