"""A fleet of real processes: trust across sites, scoped requests through the WAN."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edgefed.core.ids import DEFAULT_DOMAIN_ID, predictable_id
from edgefed.core.tokens import TokenSigner, load_or_create_signing_key, new_audit_id
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


def _status_everywhere(fleet: ProcessFleet, names: list[str], token: str) -> dict[str, int]:
    return {
        name: httpx.get(
            f"{fleet[name].url}/compute/v2.1/servers", headers={"X-Auth-Token": token}, timeout=30
        ).status_code
        for name in names
    }


def test_an_expired_token_is_rejected_everywhere(fleet3: ProcessFleet) -> None:
    # Signed with Berlin's own key (read from its data directory): only the expiry is wrong.
    key = load_or_create_signing_key(fleet3["Berlin"].data_dir / "keys" / "signing.pem")
    signer = TokenSigner(key, kid="Berlin")
    now = time.time()
    claims = {
        "iss": "Berlin",
        "iat": now - 7200,
        "exp": now - 60,
        "jti": new_audit_id(),
        "methods": ["password"],
        "user": {
            "id": predictable_id("user", "admin"),
            "name": "admin",
            "domain": {"id": DEFAULT_DOMAIN_ID, "name": "Default"},
        },
        "project": {
            "id": predictable_id("project", "admin"),
            "name": "admin",
            "domain": {"id": DEFAULT_DOMAIN_ID, "name": "Default"},
        },
        "roles": [{"id": predictable_id("role", "admin", domain_id=""), "name": "admin"}],
    }
    claims["chain"] = claims["jti"]
    expired = signer.sign(claims)
    fresh = signer.sign({**claims, "exp": now + 600, "jti": new_audit_id()})
    assert _status_everywhere(fleet3, fleet3.names, fresh) == dict.fromkeys(fleet3.names, 200)
    assert _status_everywhere(fleet3, fleet3.names, expired) == dict.fromkeys(fleet3.names, 401)
    r = httpx.get(
        f"{fleet3['Paris'].url}/compute/v2.1/servers",
        headers={"X-Auth-Token": expired},
        timeout=30,
    )
    assert "expired" in r.text


def test_a_revoked_sites_tokens_are_rejected_everywhere(tmp_path: Path) -> None:
    fleet = ProcessFleet(root=tmp_path, names=["Oslo", "Rome", "Lyon"], rtt_ms=10.0).start()
    try:
        lyon_token = password_token(fleet["Lyon"].url)
        others = ["Oslo", "Rome"]
        assert _status_everywhere(fleet, others, lyon_token) == dict.fromkeys(others, 200)
        oslo_admin = {"X-Auth-Token": password_token(fleet["Oslo"].url)}
        r = httpx.delete(
            f"{fleet['Oslo'].url}/edge/v1/fleet/sites/Lyon", headers=oslo_admin, timeout=30
        )
        assert r.status_code == 204, r.text
        # Rome hears of the revocation by gossip (bounded wait on the real processes).
        deadline = time.monotonic() + 30
        statuses = _status_everywhere(fleet, others, lyon_token)
        while statuses != dict.fromkeys(others, 401) and time.monotonic() < deadline:
            time.sleep(0.2)
            statuses = _status_everywhere(fleet, others, lyon_token)
        assert statuses == dict.fromkeys(others, 401)
        r = httpx.get(
            f"{fleet['Rome'].url}/compute/v2.1/servers",
            headers={"X-Auth-Token": lyon_token},
            timeout=30,
        )
        assert "Lyon" in r.text  # the refusal names the issuer it no longer trusts
    finally:
        fleet.stop()


def test_image_data_streams_through_the_router_both_ways(fleet3: ProcessFleet) -> None:
    """Upload at Berlin to Denver's image service and download it back the same way: the
    bytes cross Berlin's router and the WAN link in chunks, both directions."""
    blob = bytes(range(256)) * (24 * 1024)  # 6 MiB
    token = password_token(fleet3["Berlin"].url)
    via = {"X-Auth-Token": token, "X-Scope": "{image: Denver}"}
    berlin = fleet3["Berlin"].url

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(blob), 256 * 1024):
            yield blob[start : start + 256 * 1024]

    with httpx.Client(timeout=60) as client:
        r = client.post(
            f"{berlin}/image/v2/images",
            json={"name": "through-router", "disk_format": "raw", "container_format": "bare"},
            headers=via,
        )
        assert r.status_code == 201, r.text
        assert r.headers["x-edgefed-site"] == "Denver"
        image_id = r.json()["id"]
        r = client.put(
            f"{berlin}/image/v2/images/{image_id}/file",
            content=chunks(),
            headers={**via, "Content-Type": "application/octet-stream"},
        )
        assert r.status_code == 204, r.text
        with client.stream("GET", f"{berlin}/image/v2/images/{image_id}/file", headers=via) as r:
            assert r.status_code == 200
            assert b"".join(r.iter_bytes()) == blob
        direct = client.get(
            f"{fleet3['Denver'].url}/image/v2/images/{image_id}/file",
            headers={"X-Auth-Token": token},
        )
        assert direct.content == blob
        missing = client.get(
            f"{berlin}/image/v2/images/{image_id}/file", headers={"X-Auth-Token": token}
        )
        assert missing.status_code == 404  # Berlin itself never held it
