"""What a qemu site refuses to boot, and says why: an image QEMU cannot run (a 400 before
anything is recorded), an image bigger than the flavor's disk, and a boot no host has
room for (an ERROR server whose fault names each host's reason)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compute_testkit import V, make_image, wait_for

from edgefed.store.image import ImageRepository
from edgefed.testkit.inprocess import InProcessSite, run_site, site_settings

C = "/compute/v2.1"
HOSTS = "/edge/v1/hosts"


async def boot(site: InProcessSite, h: dict[str, str], image: str, **extra: Any) -> Any:
    server = {"name": "vm", "imageRef": image, "flavorRef": "1", "networks": "none", **extra}
    return await site.client.post(f"{C}/servers", json={"server": server}, headers=h)


def message(r: Any) -> str:
    doc = r.json()
    (kind,) = doc
    return str(doc[kind]["message"])


async def enroll(site: InProcessSite, h: dict[str, str], hostname: str, memory_mb: int) -> None:
    r = await site.client.post(
        f"{HOSTS}/enrollment-tokens", json={"hostname": hostname, "personality": "worker"},
        headers=h,
    )  # fmt: skip
    hardware = {"cpus": 2, "memory_mb": memory_mb, "disks": [{"name": "sda", "size_gb": 20}]}
    r = await site.client.post(
        f"{HOSTS}/agent/enroll",
        json={"enrollment_token": r.json()["enrollment_token"]["token"], "hostname": hostname,
              "hardware": hardware},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    assert (await site.client.post(f"{HOSTS}/{hostname}/unlock", headers=h)).status_code == 200


async def test_a_qemu_site_refuses_what_it_cannot_run_and_says_why(tmp_path: Path) -> None:
    settings = site_settings(tmp_path / "q", compute_driver="qemu", local_agent=False)
    async with run_site(settings) as site:
        h = {"X-Auth-Token": await site.token(), **V}
        iso = await make_image(site, disk_format="iso")
        ovf = await make_image(site, container_format="ovf")
        orphan_kernel = await make_image(site, properties={"kernel_id": iso})
        big = await make_image(site)
        images = ImageRepository(site.app.state.ctx.store)
        await images.update(big, virtual_size=2 * 1024**3)  # m1.tiny's disk is 1 GiB
        r = await boot(site, h, iso)
        assert r.status_code == 400
        assert message(r) == (
            f"Image {iso} is in disk format iso, which this site cannot run "
            "(it runs raw and qcow2)."
        )
        assert "container format ovf" in message(await boot(site, h, ovf))
        r = await boot(site, h, orphan_kernel)
        assert r.status_code == 400 and f"kernel_id {iso}, in disk format iso" in message(r)
        r = await boot(site, h, big)
        assert r.status_code == 400
        assert message(r).startswith("Flavor's disk is too small for requested image.")
        assert (await site.client.get(f"{C}/servers", headers=h)).json()["servers"] == []

        # No host with room: a host of 256 MiB cannot take m1.tiny's 512 MiB (ratio 1.5).
        await enroll(site, h, "edge-small", memory_mb=256)
        r = await boot(site, h, await make_image(site))
        assert r.status_code == 202, r.text
        shown = await wait_for(site, h, r.json()["server"]["id"], "ERROR")
        assert shown["fault"]["message"] == (
            "No valid host was found. (edge-small has no room for 1 vCPU, 512 MB RAM, 1 GB disk)"
        )
