"""What a server-create body asks for, read as Nova reads it, before any state is read:
the defaults a body leaves out, the fields a microversion adds, and the 400 naming each
mistake (clients show these sentences to users)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from edgefed.core.errors import BadRequest, ValidationFailed
from edgefed.services.compute.boot_request import MAX_USER_DATA, parse_boot_request
from edgefed.services.compute.microversion import APIVersion

IMAGE = "6a3c0c0e-1111-4a4a-8a8a-0123456789ab"
PORT = "7b4d1d1f-2222-4b4b-9b9b-123456789abc"
LATEST, OLD = APIVersion(2, 96), APIVersion(2, 1)


def body(**fields: Any) -> dict[str, Any]:
    return {"name": "vm", "imageRef": IMAGE, "flavorRef": "1", "networks": "auto", **fields}


def test_a_minimal_body_gets_nova_defaults() -> None:
    boot = parse_boot_request(body(), LATEST)
    assert (boot.name, boot.image_ref, boot.flavor_id, boot.networks) == ("vm", IMAGE, "1", "auto")
    assert (boot.min_count, boot.max_count, boot.security_groups) == (1, 1, ["default"])
    assert (boot.key_name, boot.zone, boot.user_data, boot.config_drive) == (
        None,
        None,
        None,
        False,
    )


def test_a_flavor_link_or_number_names_the_flavor() -> None:
    for ref, flavor_id in (("http://x/compute/v2.1/flavors/42/", "42"), (7, "7"), ("m1", "m1")):
        assert parse_boot_request(body(flavorRef=ref), LATEST).flavor_id == flavor_id
    for ref in ("", True, None, ["1"]):
        with pytest.raises(ValidationFailed, match="'flavorRef' is a required property"):
            parse_boot_request(body(flavorRef=ref), LATEST)


def test_the_image_may_come_from_a_block_device_mapping_or_the_root_be_a_volume() -> None:
    bdm = [{"source_type": "image", "uuid": IMAGE, "boot_index": 0}]
    assert parse_boot_request(body(imageRef="", block_device_mapping_v2=bdm), LATEST).image_ref == (
        IMAGE
    )
    root = [{"source_type": "volume", "uuid": IMAGE, "boot_index": "0"}]
    asked = parse_boot_request(body(imageRef="", block_device_mapping_v2=root), LATEST)
    assert asked.image_ref is None and asked.volumes[0].volume_id == IMAGE
    assert asked.volumes[0].root
    extra = [{"source_type": "volume", "uuid": IMAGE, "boot_index": -1}]
    asked = parse_boot_request(body(block_device_mapping_v2=extra), LATEST)
    assert asked.image_ref is not None and not asked.volumes[0].root
    with pytest.raises(BadRequest, match="Boot sequence"):
        parse_boot_request(body(block_device_mapping_v2=root), LATEST)  # an image and a root
    with pytest.raises(BadRequest, match="multiple instances"):
        parse_boot_request(body(block_device_mapping_v2=extra, max_count=2), LATEST)
    for ref in ("", "not-a-uuid", 12):
        with pytest.raises(BadRequest, match="Invalid imageRef provided"):
            parse_boot_request(body(imageRef=ref), LATEST)


def test_networks_are_required_from_2_37_and_auto_before() -> None:
    without = body()
    del without["networks"]
    assert parse_boot_request(without, OLD).networks == "auto"
    with pytest.raises(ValidationFailed, match="'networks' is a required property"):
        parse_boot_request(without, LATEST)
    with pytest.raises(ValidationFailed, match="not one of \\['auto', 'none'\\]"):
        parse_boot_request(body(networks="none"), OLD)
    listed = [{"port": PORT}, {"uuid": IMAGE, "fixed_ip": "10.0.0.5"}]
    assert parse_boot_request(body(networks=listed), LATEST).networks == listed


@pytest.mark.parametrize(
    ("networks", "message"),
    [
        ([{"port": "x"}], "port uuid x is invalid"),
        ([{"uuid": "y"}], "network uuid is not in proper format"),
        ([{"fixed_ip": "10.0.0.1"}], "needs a 'uuid' or a 'port'"),
        (["uuid"], "is not of type 'object'"),
        ({"uuid": IMAGE}, "is not of type 'array'"),
    ],
)
def test_a_malformed_network_request_is_named(networks: Any, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        parse_boot_request(body(networks=networks), LATEST)


def test_user_data_is_base64_and_bounded() -> None:
    encoded = base64.b64encode(b"#cloud-config\n").decode()
    assert parse_boot_request(body(user_data=encoded), LATEST).user_data == encoded
    with pytest.raises(ValidationFailed, match="is not a 'base64'"):
        parse_boot_request(body(user_data="%%%"), LATEST)
    with pytest.raises(BadRequest, match="User data too large"):
        parse_boot_request(body(user_data="A" * (MAX_USER_DATA + 1)), LATEST)


def test_counts_tags_and_descriptions_follow_their_microversions() -> None:
    boot = parse_boot_request(
        body(min_count=2, max_count=3, tags=["a", "b", "a"], description="web"), LATEST
    )
    assert (boot.min_count, boot.max_count, boot.tags, boot.description) == (
        2,
        3,
        ["a", "b"],
        "web",
    )
    old = parse_boot_request(body(tags=["a"], description="web", networks=[]), OLD)
    assert (old.tags, old.description) == ([], None)  # before 2.52 and 2.19: ignored
    assert parse_boot_request(body(max_count=1, min_count=1), LATEST).max_count == 1
    assert parse_boot_request(body(min_count=4), LATEST).max_count == 4
    with pytest.raises(BadRequest, match="min_count must be <= max_count"):
        parse_boot_request(body(min_count=3, max_count=2), LATEST)
    with pytest.raises(ValidationFailed):
        parse_boot_request(body(tags="a"), LATEST)


def test_security_groups_keys_zones_and_config_drive() -> None:
    boot = parse_boot_request(
        body(security_groups=[{"name": "web"}, {"nothing": 1}], key_name="k",
             availability_zone="edge:host1", config_drive="true", return_reservation_id=True),
        LATEST,
    )  # fmt: skip
    assert (boot.security_groups, boot.key_name, boot.zone) == (["web"], "k", "edge:host1")
    assert boot.config_drive and boot.return_reservation_id
    with pytest.raises(ValidationFailed):
        parse_boot_request(body(key_name=5), LATEST)
    with pytest.raises(ValidationFailed, match="'name' is a required property"):
        parse_boot_request({"imageRef": IMAGE, "flavorRef": "1", "networks": "auto"}, LATEST)
