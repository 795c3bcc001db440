"""Every write that answered 2xx survives ``kill -9`` (non-negotiable 3).

Writers create projects, users and images (with data) concurrently against a real
site process; the site is killed with SIGKILL while they are still writing. After a
restart, everything that was acknowledged must be there, byte for byte.
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from edgefed.testkit.fleet_process import password_token
from edgefed.testkit.process import SiteProcess

pytestmark = pytest.mark.e2e


def test_acknowledged_writes_survive_kill_9(tmp_path: Path, database_url: str | None) -> None:
    site = SiteProcess(
        name="Berlin", data_dir=tmp_path / "berlin", database_url=database_url
    ).start()
    try:
        headers = {"X-Auth-Token": password_token(site.url, site.password)}
        acked_projects: list[str] = []
        acked_images: dict[str, str] = {}
        stop = threading.Event()
        enough = threading.Event()

        def write_projects(worker: int) -> None:
            with httpx.Client(base_url=site.url, headers=headers, timeout=10) as http:
                for i in range(10_000):
                    if stop.is_set():
                        return
                    name = f"p{worker}-{i}"
                    try:
                        r = http.post("/identity/v3/projects", json={"project": {"name": name}})
                    except httpx.HTTPError:
                        return
                    if r.status_code == 201:
                        acked_projects.append(name)
                    if len(acked_projects) >= 60:
                        enough.set()

        def write_images(worker: int) -> None:
            with httpx.Client(base_url=site.url, headers=headers, timeout=10) as http:
                for i in range(10_000):
                    if stop.is_set():
                        return
                    data = hashlib.sha256(f"{worker}-{i}".encode()).digest() * 4096
                    try:
                        r = http.post(
                            "/image/v2/images",
                            json={
                                "name": f"i{worker}-{i}",
                                "disk_format": "raw",
                                "container_format": "bare",
                            },
                        )
                        if r.status_code != 201:
                            continue
                        image_id = r.json()["id"]
                        r = http.put(
                            f"/image/v2/images/{image_id}/file",
                            content=data,
                            headers={"Content-Type": "application/octet-stream"},
                        )
                    except httpx.HTTPError:
                        return
                    if r.status_code == 204:
                        acked_images[image_id] = hashlib.sha256(data).hexdigest()

        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = [pool.submit(write_projects, w) for w in range(2)]
            futures += [pool.submit(write_images, w) for w in range(2)]
            assert enough.wait(120), "writers made no progress"
            site.kill()  # SIGKILL while the writers are still writing
            stop.set()
            for f in futures:
                f.result(timeout=60)
        assert acked_projects and acked_images

        site.start()
        headers = {"X-Auth-Token": password_token(site.url, site.password)}
        with httpx.Client(base_url=site.url, headers=headers, timeout=30) as http:
            names = {p["name"] for p in http.get("/identity/v3/projects").json()["projects"]}
            missing = [n for n in acked_projects if n not in names]
            assert not missing, f"{len(missing)} acknowledged projects lost: {missing[:5]}"
            for image_id, digest in acked_images.items():
                r = http.get(f"/image/v2/images/{image_id}/file")
                assert r.status_code == 200, f"acknowledged image {image_id} lost: {r.status_code}"
                assert hashlib.sha256(r.content).hexdigest() == digest
                assert http.get(f"/image/v2/images/{image_id}").json()["status"] == "active"
    finally:
        site.stop()
