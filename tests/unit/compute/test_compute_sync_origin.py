"""Rows delivered by a sync source are read-only here: 409 naming the source."""

from __future__ import annotations

from edgefed.store.compute import FlavorRepository, QuotaRepository

C = "/compute/v2.1"


async def test_synchronised_rows_are_locked(site, h):
    store = site.app.state.ctx.store
    await FlavorRepository(store).create(
        values={
            "id": "synced",
            "name": "synced",
            "vcpus": 1,
            "ram": 64,
            "disk": 0,
            "origin": "Paris",
        }
    )
    r = await site.client.delete(f"{C}/flavors/synced", headers=h)
    assert r.status_code == 409 and "Paris" in r.json()["conflictingRequest"]["message"]
    await QuotaRepository(store).set_limits(kind="project", owner="p9", limits={"cores": 4})
    from sqlalchemy import update  # a back door: mark the rows as synchronised

    from edgefed.store.compute.tables import quotas

    async with store.write() as conn:
        await conn.execute(update(quotas).values(origin="Paris"))
    r = await site.client.put(f"{C}/os-quota-sets/p9", json={"quota_set": {"cores": 8}}, headers=h)
    assert r.status_code == 409 and "Paris" in r.text
