"""Volume types travel like flavors: marked at the source, delivered to a registered
receiver with their extra specs, and read-only there (409 naming the source)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgefed.testkit.inprocess import InProcessSite
from edgefed.testkit.inprocess_fleet import admin, fleet
from edgefed.testkit.wait import eventually

CINDER = {"OpenStack-API-Version": "volume 3.71"}


async def post(site: InProcessSite, path: str, body: Any, status: int) -> Any:
    r = await site.client.post(path, json=body, headers={**admin(site), **CINDER})
    assert r.status_code == status, r.text
    return r.json() if r.content else None


async def test_a_volume_type_reaches_a_receiver_and_is_locked_there(tmp_path: Path) -> None:
    async with fleet(tmp_path, ["Central", "Edge"], joined=True) as sites:
        central, edge = sites["Central"], sites["Edge"]
        reg = await post(edge, "/edge/v1/sync/registrations",
                         {"registration": {"source": "Central"}}, 201)  # fmt: skip
        if reg["registration"]["status"] == "pending":
            r = await central.client.post(
                "/edge/v1/sync/receivers/Edge/accept", headers=admin(central)
            )
            assert r.status_code == 200, r.text
        body = {"volume_type": {"name": "fast-ssd", "extra_specs": {"tier": "gold"}}}
        made = await post(central, "/volume/v3/types", body, 200)
        type_id = made["volume_type"]["id"]
        await post(central, "/edge/v1/sync/marks",
                   {"mark": {"kind": "volume_type", "id": type_id, "to": "*"}}, 201)  # fmt: skip

        async def arrived() -> bool:
            r = await edge.client.get(f"/volume/v3/types/{type_id}", headers=admin(edge))
            return r.status_code == 200

        await eventually(arrived, within=20, what="the volume type at Edge")
        r = await edge.client.get(f"/volume/v3/types/{type_id}", headers=admin(edge))
        shown = r.json()["volume_type"]
        assert shown["name"] == "fast-ssd" and shown["extra_specs"] == {"tier": "gold"}

        # A volume of that type can be made at Edge; the type itself is Central's.
        r = await edge.client.post(
            "/volume/v3/volumes", json={"volume": {"size": 1, "volume_type": "fast-ssd"}},
            headers={**admin(edge), **CINDER},
        )  # fmt: skip
        assert r.status_code == 202, r.text
        for attempt in (
            edge.client.put(f"/volume/v3/types/{type_id}",
                            json={"volume_type": {"name": "renamed"}}, headers=admin(edge)),
            edge.client.post(f"/volume/v3/types/{type_id}/extra_specs",
                             json={"extra_specs": {"tier": "tin"}}, headers=admin(edge)),
            edge.client.delete(f"/volume/v3/types/{type_id}", headers=admin(edge)),
        ):  # fmt: skip
            r = await attempt
            assert r.status_code == 409 and "Central" in r.text, r.text
