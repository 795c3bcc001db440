"""The row codec: what another site sends is checked column by column as the database
would check it, and refused by name (a 400 for that item, never a failed transaction);
what this site sends carries every column but ``origin`` and per-site ids."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from edgefed.store.sync import KINDS
from edgefed.store.sync.codec import MAX_JSON_DEPTH, decode_row, encode_row


def flavor(**changes: Any) -> dict[str, Any]:
    row = {
        "id": "f1", "name": "m1.tiny", "vcpus": 1, "ram": 512, "disk": 1, "ephemeral": 0,
        "swap": 0, "rxtx_factor": 1.0, "is_public": True, "description": None,
        "extra_specs": {"hw:cpu": "2"}, "created_at": "2026-01-02T03:04:05+00:00",
    }  # fmt: skip
    row.update(changes)
    return row


def nested(depth: int) -> Any:
    doc: Any = "leaf"
    for _ in range(depth):
        doc = {"k": doc}
    return doc


def test_a_good_row_decodes_to_column_values() -> None:
    values = decode_row(KINDS["flavor"], flavor())
    assert values["created_at"] == dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert values["extra_specs"] == {"hw:cpu": "2"}
    assert values["description"] is None


def test_a_time_without_a_zone_is_taken_as_utc() -> None:
    values = decode_row(KINDS["flavor"], flavor(created_at="2026-01-02T03:04:05"))
    assert values["created_at"].tzinfo == dt.UTC


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"vcpus": "1"}, "flavor.vcpus must be an integer"),
        ({"vcpus": True}, "flavor.vcpus must be an integer"),  # a bool is no integer
        ({"ram": 2**31}, "flavor.ram is out of range"),
        ({"ram": -(2**31) - 1}, "flavor.ram is out of range"),
        ({"rxtx_factor": "fast"}, "flavor.rxtx_factor must be a number"),
        ({"rxtx_factor": float("inf")}, "flavor.rxtx_factor must be finite"),
        ({"rxtx_factor": float("nan")}, "flavor.rxtx_factor must be finite"),
        ({"is_public": 1}, "flavor.is_public must be true or false"),
        ({"name": 5}, "flavor.name must be a string"),
        ({"name": "x" * 256}, "flavor.name is longer than 255 characters"),
        ({"name": "a\x00b"}, "flavor.name may not contain a NUL character"),
        ({"created_at": "yesterday"}, "flavor.created_at is not an ISO 8601 date and time"),
        ({"created_at": 5}, "flavor.created_at must be an ISO 8601 string"),
        ({"extra_specs": {"k": "a\x00"}}, "flavor.extra_specs may not contain a NUL character"),
        ({"extra_specs": {"k": float("nan")}}, "holds a number that is not finite"),
        ({"extra_specs": nested(MAX_JSON_DEPTH + 2)}, f"nests deeper than {MAX_JSON_DEPTH}"),
        ({"name": None}, "flavor.name may not be null"),
        ({"id": ""}, "flavor row lacks its key column 'id'"),
        ({"id": "a|b"}, "flavor.id may not contain '|'"),
    ],
)
def test_a_malformed_value_is_refused_naming_its_column(changes: dict[str, Any], says: str) -> None:
    with pytest.raises(ValueError) as refused:
        decode_row(KINDS["flavor"], flavor(**changes))
    assert says in str(refused.value)


def test_a_missing_column_is_refused_unless_it_may_be_left_out() -> None:
    row = flavor()
    del row["vcpus"]
    with pytest.raises(ValueError, match="flavor row lacks column 'vcpus'"):
        decode_row(KINDS["flavor"], row)
    row = flavor()
    del row["description"]  # nullable: may be left out
    assert "description" not in decode_row(KINDS["flavor"], row)


def test_big_integers_fit_big_columns() -> None:
    image = KINDS["image"]
    row = {c.name: None for c in image.table.c if c.name != "origin"}
    row.update(
        id="i1", status="active", visibility="public", protected=False, os_hidden=False,
        min_disk=0, min_ram=0, properties={}, tags=[], size=2**40,
        created_at="2026-01-01T00:00:00+00:00", updated_at="2026-01-01T00:00:00+00:00",
    )  # fmt: skip
    assert decode_row(image, row)["size"] == 2**40
    with pytest.raises(ValueError, match="image.size is out of range"):
        decode_row(image, {**row, "size": 2**63})


def test_every_key_column_of_a_compound_key_is_needed() -> None:
    access = KINDS["flavor_access"]
    assert decode_row(access, {"flavor_id": "f1", "project_id": "p1"}) == {
        "flavor_id": "f1",
        "project_id": "p1",
    }
    with pytest.raises(ValueError, match="flavor_access.project_id may not be null"):
        decode_row(access, {"flavor_id": "f1", "project_id": None})
    with pytest.raises(ValueError, match="may not contain"):
        decode_row(access, {"flavor_id": "f|1", "project_id": "p1"})


def test_per_site_ids_and_origin_stay_home() -> None:
    keypair = KINDS["keypair"]
    row = {
        "id": 7, "user_id": "u1", "name": "k", "type": "ssh", "public_key": "ssh-ed25519 AAAA",
        "fingerprint": "aa:bb", "origin": "Paris",
        "created_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    }  # fmt: skip
    wire = encode_row(keypair, row)
    assert "id" not in wire and "origin" not in wire
    assert wire["created_at"] == "2026-01-01T00:00:00+00:00"
    back = decode_row(keypair, {**wire, "id": 99, "origin": "Mallory"})
    assert "id" not in back and "origin" not in back  # never taken from the wire
