"""The site's in-memory view of the fleet, the keyring and peers it keeps in step, and
the site context's own small rules (whose tokens count, where the site is)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from edgefed.api.context import Keyring, SiteContext
from edgefed.api.fleetview import FleetView
from edgefed.core.ed25519 import Ed25519PrivateKey
from edgefed.core.fleet import Revocation, SiteEntry
from edgefed.core.settings import Location, SiteSettings
from edgefed.core.tokens import public_key_b64, public_key_from_b64


def entry(name: str, **fields: Any) -> SiteEntry:
    key = public_key_b64(Ed25519PrivateKey.generate().public_key())
    fields.setdefault("endpoint", f"http://{name.lower()}.test")
    return SiteEntry(name=name, public_key=key, **fields)


def view() -> FleetView:
    return FleetView(self_name="Berlin", keyring=Keyring(), peers={})


def test_an_active_member_is_a_peer_with_a_pinned_key() -> None:
    fleet = view()
    paris = entry("Paris")
    fleet.apply([entry("Berlin"), paris])
    assert fleet.peers == {"Paris": "http://paris.test"}  # never itself
    assert fleet.keyring.lookup("Paris") is not None
    assert fleet.keyring.lookup("Berlin") is None  # its own key comes from its signer
    assert fleet.active("Paris") and not fleet.active("Rome")


def test_a_revoked_member_loses_its_key_and_its_peer_place() -> None:
    fleet = view()
    paris = entry("Paris")
    fleet.apply([paris])
    fleet.apply([dataclasses.replace(paris, revocation=Revocation(by="Berlin", at=1.0))])
    assert "Paris" not in fleet.peers
    assert fleet.keyring.lookup("Paris") is None and "Paris" in fleet.keyring.revoked
    assert fleet.site_names() == ["Berlin"]
    # Re-enrolled (a new machine): back, and no longer in the revoked set.
    fleet.apply([entry("Paris")])
    assert fleet.keyring.lookup("Paris") is not None and "Paris" not in fleet.keyring.revoked


def test_tls_pins_follow_the_registry() -> None:
    fleet = view()
    pins = fleet.keyring.tls_pins
    paris = entry("Paris", endpoint="https://paris.test")
    raw = public_key_from_b64(paris.public_key).raw
    fleet.apply([paris])
    assert pins.get("paris.test", 443) == raw
    moved = dataclasses.replace(paris, endpoint="https://paris.test:8443", version=2)
    fleet.apply([moved])
    assert (pins.get("paris.test", 443), pins.get("paris.test", 8443)) == (None, raw)
    fleet.apply([dataclasses.replace(moved, revocation=Revocation(by="Berlin", at=1.0))])
    assert pins.get("paris.test", 8443) is None


def test_a_moved_endpoint_is_followed() -> None:
    fleet = view()
    paris = entry("Paris")
    fleet.apply([paris])
    fleet.apply([dataclasses.replace(paris, endpoint="http://paris2.test", version=2)])
    assert fleet.peers["Paris"] == "http://paris2.test"


def test_site_names_are_the_active_members_or_this_site_alone() -> None:
    fleet = view()
    assert fleet.site_names() == ["Berlin"]
    fleet.apply([entry("Rome"), entry("Berlin"), entry("Paris")])
    assert fleet.site_names() == ["Berlin", "Paris", "Rome"]


def test_labels_take_region_and_country_from_the_location_unless_set() -> None:
    fleet = view()
    fleet.apply(
        [
            entry("Paris", location=Location(country="FR", region="eu"), labels={"tier": "edge"}),
            entry("Rome", location=Location(region="eu"), labels={"region": "south"}),
        ]
    )
    assert fleet.labels_of("Paris") == {"tier": "edge", "region": "eu", "country": "FR"}
    assert fleet.labels_of("Rome") == {"region": "south"}
    assert fleet.labels_of("Atlantis") == {}


def test_rtts_are_directed_and_a_site_is_zero_from_itself() -> None:
    fleet = view()
    fleet.rtt = {"Berlin": {"Paris": 12.0}}
    assert fleet.rtt_ms("Berlin", "Paris") == 12.0
    assert fleet.rtt_ms("Paris", "Berlin") is None
    assert fleet.rtt_ms("Rome", "Rome") == 0.0


def test_the_keyring_refuses_a_revoked_site_even_with_a_key() -> None:
    key = Ed25519PrivateKey.generate().public_key()
    keyring = Keyring(keys={"Paris": key})
    assert keyring.lookup("Paris") is key
    keyring.revoked.add("Paris")
    assert keyring.lookup("Paris") is None
    assert keyring.lookup("Rome") is None


def context(tmp_path: Path, **settings: Any) -> SiteContext:
    values: dict[str, Any] = {"name": "Berlin", "data_dir": tmp_path, "admin_password": "x"}
    values.update(settings)
    fake: Any = SimpleNamespace()
    return SiteContext(
        settings=SiteSettings(**values),
        store=fake,
        signer=fake,
        keyring=Keyring(),
        revocations=fake,
        http=fake,
    )


def test_the_public_url_is_the_setting_without_a_trailing_slash_or_host_and_port(
    tmp_path: Path,
) -> None:
    assert context(tmp_path, public_url="https://berlin.example/").public_url == (
        "https://berlin.example"
    )
    assert context(tmp_path, host="10.0.0.1", port=5001).public_url == "http://10.0.0.1:5001"


def test_the_fleet_sites_are_this_site_and_its_peers(tmp_path: Path) -> None:
    ctx = context(tmp_path, public_url="http://berlin.test")
    assert ctx.fleet_sites() == {"Berlin": "http://berlin.test"}
    ctx.peers["Paris"] = "http://paris.test"
    assert ctx.fleet_sites() == {"Berlin": "http://berlin.test", "Paris": "http://paris.test"}
    assert ctx.name == "Berlin"
