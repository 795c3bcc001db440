"""A fleet of real processes: trust across sites, scoped requests through the WAN."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edgefed.testkit.fleet_process import ProcessFleet, password_token

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def fleet3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessFleet]:
    fleet = ProcessFleet(
        root=tmp_path_factory.mktemp("fleet3"),
        names=["Berlin", "Denver", "Paris"],
        rtt_ms=20.0,
        labels={"Berlin": {"region": "eu"}, "Denver": {"region": "us"}, "Paris": {"region": "eu"}},
    ).start()
    try:
        yield fleet
    finally:
        fleet.stop()


def test_tokens_are_validated_by_every_site(fleet3: ProcessFleet) -> None:
    token = password_token(fleet3["Berlin"].url)
    for name in ("Denver", "Paris"):
        r = httpx.get(
            f"{fleet3[name].url}/edge/v1/fleet/sites", headers={"X-Auth-Token": token}, timeout=30
        )
        assert r.status_code == 200, (name, r.text)


def test_catalog_lists_every_site_as_a_region(fleet3: ProcessFleet) -> None:
    r = httpx.post(
        f"{fleet3['Paris'].url}/identity/v3/auth/tokens",
        json={
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": "admin",
                            "domain": {"id": "default"},
                            "password": fleet3["Paris"].password,
                        }
                    },
                },
                "scope": {"project": {"name": "admin", "domain": {"id": "default"}}},
            }
        },
        timeout=30,
    )
    catalog = r.json()["token"]["catalog"]
    compute = next(s for s in catalog if s["type"] == "compute")
    assert {e["region_id"] for e in compute["endpoints"]} == {"Berlin", "Denver", "Paris"}


def test_foreign_tokens_are_rejected_everywhere(fleet3: ProcessFleet, tmp_path: Path) -> None:
    outsider = ProcessFleet(root=tmp_path, names=["Lyon"]).start()
    try:
        token = password_token(outsider["Lyon"].url)
    finally:
        outsider.stop()
    tampered = password_token(fleet3["Berlin"].url)
    tampered = tampered[:-6] + ("AAAAAA" if not tampered.endswith("AAAAAA") else "BBBBBB")
    for bad in (token, tampered, "garbage"):
        for name in fleet3.names:
            r = httpx.get(
                f"{fleet3[name].url}/compute/v2.1/servers",
                headers={"X-Auth-Token": bad},
                timeout=30,
            )
            assert r.status_code == 401, (name, r.text)
