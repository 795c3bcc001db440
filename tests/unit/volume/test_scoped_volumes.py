"""The volume API through the scope router: a volume made and read at another site."""

from __future__ import annotations

from pathlib import Path

from edgefed.testkit.inprocess_fleet import admin, fleet


async def test_a_volume_is_made_at_the_site_the_scope_names(tmp_path: Path) -> None:
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True) as s:
        berlin, paris = s["Berlin"], s["Paris"]
        h = {**admin(berlin), "OpenStack-API-Version": "volume 3.71"}
        r = await berlin.client.post(
            "/volume/v3/volumes",
            json={"volume": {"size": 1, "name": "in-paris"}},
            headers={**h, "X-Scope": "{volume: Paris}"},
        )
        assert r.status_code == 202, r.text
        assert r.headers["x-edgefed-site"] == "Paris"
        vol = r.json()["volume"]
        # the volume and its data are in Paris, not in Berlin
        assert (paris.app.state.ctx.settings.data_dir / "volumes" / f"{vol['id']}.raw").exists()
        r = await berlin.client.get(f"/volume/v3/volumes/{vol['id']}", headers=h)
        assert r.status_code == 404
        r = await berlin.client.get(
            f"/volume/v3/volumes/{vol['id']}", headers={**h, "X-Scope": "{volume: Paris}"}
        )
        assert r.status_code == 200 and r.json()["volume"]["name"] == "in-paris"
        await berlin.client.post(
            "/volume/v3/volumes", json={"volume": {"size": 1, "name": "in-berlin"}}, headers=h
        )
        r = await berlin.client.get(
            "/volume/v3/volumes/detail", headers={**h, "X-Scope": "{volume: *}"}
        )
        assert r.status_code == 200, r.text
        listed = r.json()["volumes"]
        assert sorted((v["name"], v["os-scope:site"]) for v in listed) == [
            ("in-berlin", "Berlin"),
            ("in-paris", "Paris"),
        ]
