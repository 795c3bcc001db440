"""Rows become records one way (RecordMapper), and RecordRepository keeps the contract
the API kit relies on: get, list with filters and paging, create, update, delete."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import Boolean, Column, Integer, MetaData, String, Table
from sqlalchemy.exc import IntegrityError

from edgefed.core.errors import Conflict
from edgefed.store.engine import Store
from edgefed.store.records import RecordMapper, RecordRepository
from edgefed.store.schema import JsonDoc, UtcDateTime

test_metadata = MetaData()
things = Table(
    "test_things",
    test_metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("size", Integer, nullable=False, default=0),
    Column("hidden", Boolean, nullable=False, default=False),
    Column("tags", JsonDoc, nullable=True),
    Column("labels", JsonDoc, nullable=True),
    Column("colour", String(16), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)


@dataclass(frozen=True, slots=True)
class Thing:
    id: str
    name: str
    size: int
    hidden: bool
    tags: tuple[str, ...]
    labels: dict[str, str]
    colour: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    # Held by no column: filled by whoever knows it, or left at its default.
    parts: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class NewThing:
    name: str
    size: int = 0
    tags: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    colour: str | None = None


class Things(RecordRepository[Thing, NewThing]):
    table = things
    mapper = RecordMapper(Thing)
    order = ("size", "id")


T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


class Ticks:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> dt.datetime:
        self.n += 1
        return T0 + dt.timedelta(seconds=self.n)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    store = await Store.open(store_url)
    async with store.write() as conn:
        await conn.run_sync(test_metadata.create_all)
    try:
        yield store
    finally:
        await store.close()


def test_the_mapper_fills_fields_from_columns_by_type() -> None:
    mapper = RecordMapper(Thing)
    row: dict[str, Any] = {
        "id": "t1", "name": "a", "size": 3, "hidden": 0, "tags": ["x", "y"], "labels": None,
        "colour": None, "created_at": T0, "updated_at": T0, "not_a_field": "ignored",
    }  # fmt: skip
    thing = mapper.from_mapping(row)
    assert thing.tags == ("x", "y") and thing.labels == {} and thing.hidden is False
    assert thing.parts == ()
    assert mapper.from_mapping({**row, "tags": None}, parts=("p",)).tags == ()
    assert mapper.from_mapping(row, parts=("p",)).parts == ("p",)
    with pytest.raises(TypeError):
        RecordMapper(dict)  # type: ignore[arg-type]


async def test_create_stamps_and_get_reads_back(store: Store) -> None:
    writes: list[int] = []
    things_ = Things(store, now=Ticks(), on_write=lambda: writes.append(1))
    made = await things_.create(new=NewThing(name="a", size=2, tags=("t",), labels={"k": "v"}))
    assert len(made.id) == 36 and made.created_at == made.updated_at == T0 + dt.timedelta(seconds=1)
    assert made.tags == ("t",) and made.labels == {"k": "v"} and made.hidden is False
    assert await things_.get(id=made.id) == made
    assert await things_.get(id="missing") is None
    assert writes == [1]


async def test_list_filters_orders_and_pages(store: Store) -> None:
    things_ = Things(store)
    for name, size in (("c", 3), ("a", 1), ("b", 2), ("d", 2)):
        await things_.create(new=NewThing(name=name, size=size))
    everything = await things_.list()
    assert [t.size for t in everything] == [1, 2, 2, 3]
    # Sorted by size, then id (a tie of sizes goes by id).
    twos = [t for t in everything if t.size == 2]
    assert [t.id for t in twos] == sorted(t.id for t in twos)
    assert [t.name for t in await things_.list(filters={"size": 2})] == [t.name for t in twos]
    assert {t.name for t in await things_.list(filters={"name": ("a", "c")})} == {"a", "c"}
    await things_.update(id=everything[0].id, changes={"colour": "red"})
    assert [t.name for t in await things_.list(filters={"colour": "red"})] == ["a"]
    assert {t.name for t in await things_.list(filters={"colour": None})} == {"b", "c", "d"}
    page = await things_.list(limit=2)
    rest = await things_.list(limit=2, after=page[-1].id)
    assert [t.id for t in page + list(rest)] == [t.id for t in everything]
    assert await things_.list(after=everything[-1].id) == []
    with pytest.raises(LookupError):
        await things_.list(after="no-such-thing")


async def test_update_sets_columns_and_says_when_the_record_is_gone(store: Store) -> None:
    clock = Ticks()
    things_ = Things(store, now=clock)
    made = await things_.create(new=NewThing(name="a"))
    updated = await things_.update(id=made.id, changes={"size": 7, "hidden": True})
    assert updated is not None and (updated.size, updated.hidden) == (7, True)
    assert updated.updated_at > made.updated_at and updated.created_at == made.created_at
    assert await things_.update(id="gone", changes={"size": 1}) is None
    for bad in ({"id": "x"}, {"flavour": "sweet"}):
        with pytest.raises(ValueError):
            await things_.update(id=made.id, changes=bad)


async def test_a_conflict_is_worded_by_the_repository(store: Store) -> None:
    def wording(exc: IntegrityError, values: dict[str, Any]) -> Exception:
        return Conflict(f"A thing named {values['name']} exists.")

    things_ = Things(store, conflict=wording)
    made = await things_.create(new=NewThing(name="a"))
    with pytest.raises(Conflict, match="A thing named a exists."):
        await things_.create(new=NewThing(name="a"))
    other = await things_.create(new=NewThing(name="b"))
    with pytest.raises(Conflict, match="A thing named a exists."):
        await things_.update(id=other.id, changes={"name": "a"})
    with pytest.raises(Conflict, match="conflicts with an existing one"):
        await Things(store).create(new=NewThing(name="b"))
    assert sorted(t.name for t in await things_.list()) == ["a", "b"]
    assert made.name == "a"


async def test_delete_says_whether_there_was_a_record(store: Store) -> None:
    things_ = Things(store)
    made = await things_.create(new=NewThing(name="a"))
    assert await things_.delete(id=made.id) is True
    assert await things_.delete(id=made.id) is False
    assert await things_.get(id=made.id) is None
