"""A service's private state on the site context, found by its class."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from edgefed.api.slots import Slots


@dataclass
class ComputeLike:
    name: str


@dataclass
class CacheLike:
    size: int


def test_each_class_finds_its_own_object() -> None:
    slots = Slots()
    compute = slots.put(ComputeLike("nova"))
    cache = slots.put(CacheLike(3))
    assert slots.require(ComputeLike) is compute
    assert slots.get(CacheLike) is cache


def test_a_second_object_of_a_class_replaces_the_first() -> None:
    slots = Slots()
    slots.put(ComputeLike("old"))
    slots.put(ComputeLike("new"))
    assert slots.require(ComputeLike).name == "new"


def test_a_missing_state_is_none_or_a_lookup_error_naming_the_class() -> None:
    slots = Slots()
    assert slots.get(ComputeLike) is None
    with pytest.raises(LookupError, match="ComputeLike"):
        slots.require(ComputeLike)


def test_setdefault_makes_the_state_once() -> None:
    slots = Slots()
    made: list[int] = []

    def make() -> CacheLike:
        made.append(1)
        return CacheLike(len(made))

    first = slots.setdefault(CacheLike, make)
    assert slots.setdefault(CacheLike, make) is first
    assert made == [1]


def test_pop_takes_the_state_away() -> None:
    slots = Slots()
    compute = slots.put(ComputeLike("nova"))
    assert slots.pop(ComputeLike) is compute
    assert slots.pop(ComputeLike) is None
    assert slots.get(ComputeLike) is None
