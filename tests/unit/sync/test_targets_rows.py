"""Target sets and the row codec."""

from __future__ import annotations

import datetime as dt

import pytest

from edgefed.core.errors import ValidationFailed
from edgefed.core.scope_resolve import StaticFleetView
from edgefed.store.sync import KINDS
from edgefed.store.sync.codec import decode_row, encode_row
from edgefed.sync.targets import normalise, resolve


def fleet() -> StaticFleetView:
    return StaticFleetView(
        sites=("Berlin", "Denver", "Paris"),
        labels={"Denver": {"tier": "edge"}, "Paris": {"tier": "edge"}},
    )


def test_target_sets_name_sites_selectors_and_everything() -> None:
    assert resolve("Denver", fleet()) == {"Denver"}
    assert resolve("Denver,Paris", fleet()) == {"Denver", "Paris"}
    assert resolve("@tier=edge", fleet()) == {"Denver", "Paris"}
    assert resolve("*", fleet()) == {"Berlin", "Denver", "Paris"}
    assert resolve("Tokyo", fleet()) == set()  # not (yet) in the fleet


def test_bad_target_set_names_the_field() -> None:
    with pytest.raises(ValidationFailed) as info:
        normalise("Denver&&")
    assert info.value.field == "to"
    with pytest.raises(ValidationFailed):
        normalise(" , ")


def test_rows_round_trip_with_datetimes_and_no_origin() -> None:
    kind = KINDS["flavor"]
    row = {c.name: None for c in kind.table.c} | {
        "id": "f1", "name": "m1.tiny", "vcpus": 1, "ram": 512, "disk": 1, "ephemeral": 0,
        "swap": 0, "rxtx_factor": 1.0, "is_public": True, "extra_specs": {"hw:cpu": "2"},
        "origin": "Berlin", "created_at": dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
    }  # fmt: skip
    wire = encode_row(kind, row)
    assert "origin" not in wire
    back = decode_row(kind, wire)
    assert back["created_at"] == row["created_at"]
    assert back["extra_specs"] == {"hw:cpu": "2"}


def test_a_row_without_its_key_is_refused() -> None:
    with pytest.raises(ValueError, match="id"):
        decode_row(KINDS["project"], {"name": "p", "domain_id": "default"})
