"""Sync over real processes and the WAN: central -> regional -> edge, and a cut image pull.

One fleet for the module: Central is the top source, Regional receives from it and is
itself the source of Edge. On PostgreSQL (``--database=postgres``) every site gets its
own database.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator

import httpx
import pytest

from edgefed.testkit.fleet_process import ProcessFleet, password_token
from edgefed.testkit.postgres import PostgresServer
from edgefed.testkit.wait import until

pytestmark = pytest.mark.e2e

NAMES = ["Central", "Regional", "Edge"]
FAST_RETRIES = (
    "sync_backoff_seconds = [0.2, 0.5, 1.0]\n"
    "sync_breaker_threshold = 2\n"
    "sync_breaker_cooldown_seconds = 1.0\n"
)
IMAGE_BYTES = 16 * 1024 * 1024
BANDWIDTH = 4 * 1024 * 1024  # bytes/s on Central's link: the pull takes ~4 s


def api(fleet: ProcessFleet, site: str) -> httpx.Client:
    proc = fleet[site]
    token = password_token(proc.url, proc.password)
    return httpx.Client(base_url=proc.url, headers={"X-Auth-Token": token}, timeout=30)


@pytest.fixture(scope="module")
def hierarchy(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer | None
) -> Iterator[ProcessFleet]:
    urls: dict[str, str | None] = {
        n: None
        if postgres_server is None
        else postgres_server.create_database(f"h_{n.lower()}_{uuid.uuid4().hex[:8]}")
        for n in NAMES
    }
    fleet = ProcessFleet(
        root=tmp_path_factory.mktemp("hierarchy"),
        names=NAMES,
        rtt_ms=20,
        database_urls=urls,
        extra_config=FAST_RETRIES,
    ).start()
    try:
        for receiver, source in (("Regional", "Central"), ("Edge", "Regional")):
            with api(fleet, source) as c:  # the source's operator approves ahead
                r = c.post(f"/edge/v1/sync/receivers/{receiver}/accept")
                assert r.status_code == 200 and r.json()["receiver"]["state"] == "approved"
            with api(fleet, receiver) as c:
                r = c.post("/edge/v1/sync/registrations", json={"registration": {"source": source}})
                assert r.status_code == 201, r.text
                assert r.json()["registration"]["status"] == "active", r.text
        yield fleet
    finally:
        fleet.stop()


def test_three_levels_converge_and_the_central_progress_shows_the_edge(
    hierarchy: ProcessFleet,
) -> None:
    fleet = hierarchy
    with api(fleet, "Central") as central:
        r = central.post(
            "/compute/v2.1/flavors",
            json={"flavor": {"name": "tier.small", "ram": 256, "vcpus": 1, "disk": 1}},
        )
        assert r.status_code == 200, r.text
        flavor = r.json()["flavor"]["id"]
        r = central.post(
            "/edge/v1/sync/marks", json={"mark": {"kind": "flavor", "id": flavor, "to": "*"}}
        )
        assert r.status_code == 201, r.text

        with api(fleet, "Edge") as edge:
            until(
                lambda: edge.get(f"/compute/v2.1/flavors/{flavor}").status_code == 200,
                what="the flavor at Edge",
            )
            r = edge.delete(f"/compute/v2.1/flavors/{flavor}")
            assert r.status_code == 409 and "Regional" in r.text

        def edge_done() -> bool:
            tree = central.get("/edge/v1/sync/progress").json()["progress"]
            (regional,) = tree["children"]
            edges = regional.get("children", [])
            return (
                regional["reachable"]
                and len(edges) == 1
                and edges[0]["site"] == "Edge"
                and edges[0]["reachable"]
                and regional["targets"]["Edge"]["done"] >= 1
                and regional["targets"]["Edge"]["pending"] == 0
            )

        until(edge_done, what="Central's progress view showing Edge done")


def test_image_pull_cut_halfway_resumes_and_arrives_byte_identical(
    hierarchy: ProcessFleet,
) -> None:
    fleet = hierarchy
    data = os.urandom(IMAGE_BYTES)
    digest = hashlib.sha256(data).hexdigest()
    with api(fleet, "Central") as central:
        r = central.post(
            "/image/v2/images",
            json={"name": "big", "disk_format": "raw", "container_format": "bare"},
        )
        assert r.status_code == 201, r.text
        image = r.json()["id"]
        r = central.put(
            f"/image/v2/images/{image}/file",
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert r.status_code == 204, r.text
        link = fleet.wan.link(server="Central")
        link.update(bandwidth=BANDWIDTH)
        sent_before = link.stats.bytes_down
        r = central.post(
            "/edge/v1/sync/marks", json={"mark": {"kind": "image", "id": image, "to": "*"}}
        )
        assert r.status_code == 201, r.text

    part = fleet["Regional"].data_dir / "images" / ".sync" / f"{digest}.part"
    until(
        lambda: part.exists() and part.stat().st_size >= IMAGE_BYTES // 2,
        what="half the image pulled by Regional",
    )
    fleet.wan.cut_site("Central", mode="reset")
    try:
        with api(fleet, "Regional") as regional:

            def pull_failed() -> bool:
                report = regional.get("/edge/v1/sync/progress?depth=0").json()["progress"]
                pulls = [i for i in report["images"] if i["image_id"] == image]
                return bool(pulls) and pulls[0]["state"] == "failing"

            until(pull_failed, what="Regional's pull failing while Central is cut off")
            assert regional.get(f"/image/v2/images/{image}").json()["status"] == "queued"
        kept = part.stat().st_size
        assert 0 < kept < IMAGE_BYTES
    finally:
        fleet.wan.heal_site("Central")

    for site in ("Regional", "Edge"):
        with api(fleet, site) as c:
            until(
                lambda c=c: c.get(f"/image/v2/images/{image}").json()["status"] == "active",
                what=f"the image active at {site}",
            )
            got = c.get(f"/image/v2/images/{image}/file")
            assert got.status_code == 200
            assert hashlib.sha256(got.content).hexdigest() == digest
    # Resumed, not started over: Central sent the image about once, not 1.5 times.
    sent = link.stats.bytes_down - sent_before
    assert sent < IMAGE_BYTES * 1.3, f"Central sent {sent} bytes for a {IMAGE_BYTES}-byte image"
    assert not part.exists()
