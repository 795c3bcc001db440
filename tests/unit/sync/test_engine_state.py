"""The sync engine's own bookkeeping at one site: marks are checked before they are
stored, read from a file, and kept in memory as pushes leave them; sources are
remembered and forgotten; blobs are served only for images marked for the asker."""

from __future__ import annotations

from pathlib import Path

import pytest
from sync_support import engine_of

from edgefed.core.errors import ValidationFailed
from edgefed.store.sync import Mark
from edgefed.testkit.inprocess import InProcessSite


async def test_a_mark_names_a_kind_a_key_of_that_kind_and_a_target_set(
    site: InProcessSite,
) -> None:
    engine = engine_of(site)
    for kind, key, to, field in (
        ("volume", "v1", "*", "kind"),
        ("role_assignment", "user|u1|project", "*", "id"),
        ("project", "p1", "Denver&&", "to"),
        ("project", "p1", " , ", "to"),
    ):
        with pytest.raises(ValidationFailed) as refused:
            await engine.mark(kind=kind, key=key, to=to)
        assert refused.value.field == field
    assert await engine.repo.list_marks() == []

    mark = await engine.mark(kind="project", key="*", to=" Denver , @region=eu ")
    assert mark == Mark("project", "*", "Denver,@region=eu", None)
    assert await engine.repo.list_marks() == [mark]
    assert engine.marks == {("project", "*"): [mark]}
    assert engine.forwarded_targets("project", "any") == "Denver,@region=eu"


async def test_marks_load_from_a_file_or_name_the_setting_at_fault(
    site: InProcessSite, tmp_path: Path
) -> None:
    engine = engine_of(site)
    good = tmp_path / "marks.toml"
    good.write_text('[[mark]]\nkind = "flavor"\nid = "*"\nto = "*"\n'
                    '[[mark]]\nkind = "project"\nid = "p1"\nto = "Denver"\n')  # fmt: skip
    await engine.load_marks_file(good)
    assert [(m.kind, m.key, m.targets) for m in await engine.repo.list_marks()] == [
        ("flavor", "*", "*"),
        ("project", "p1", "Denver"),
    ]
    for text in ("[[mark]]\nkind = 'flavor'\n", "not toml [", "[[mark]]\nkind='x'\nid='1'\nto='*'"):
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(ValidationFailed) as refused:
            await engine.load_marks_file(bad)
        assert refused.value.field in ("sync_marks_file", "kind")
    with pytest.raises(ValidationFailed, match="cannot read sync marks file"):
        await engine.load_marks_file(tmp_path / "missing.toml")


async def test_marks_in_memory_follow_what_pushes_applied(site: InProcessSite) -> None:
    engine = engine_of(site)
    items = [
        {"kind": "project", "key": "p1", "op": "upsert", "targets": "Lyon"},
        {"kind": "project", "key": "p2", "op": "upsert", "targets": "Nice"},
        {"kind": "project", "key": "p3", "op": "upsert"},
    ]
    engine.note_applied(
        items,
        [{"status": "applied"}, {"status": "conflict"}, {"status": "applied"}],
        origin="Central",
    )
    assert engine.marks == {("project", "p1"): [Mark("project", "p1", "Lyon", "Central")]}
    assert engine.forwarded_targets("project", "p1") == "Lyon"
    assert engine.forwarded_targets("project", "p2") is None
    engine.note_applied(
        [{"kind": "project", "key": "p1", "op": "delete"}],
        [{"status": "applied"}],
        origin="Central",
    )
    assert engine.marks == {}


async def test_sources_are_remembered_and_forgotten(site: InProcessSite) -> None:
    engine = engine_of(site)
    assert not await engine.is_source("Central")
    await engine.add_source("Central")
    assert await engine.is_source("Central")
    assert await engine.remove_source("Central")
    assert not await engine.is_source("Central")
    assert not await engine.remove_source("Central")


async def test_a_blob_is_served_only_for_an_image_marked_for_the_asker(
    site: InProcessSite,
) -> None:
    engine = engine_of(site)
    assert not await engine.serves_blob("Denver", "../keys/signing.pem")
    assert not await engine.serves_blob("Denver", "ab" * 32)  # no image has it
    assert await engine.pull_for("Denver", kind="project", key="nope") == 0
