"""Composing multi-site answers by JSON shape alone."""

from __future__ import annotations

import json

import orjson

from edgefed.router.merge import SiteAnswer, collection_key, failure, merge_success


def answer(site: str, body: object, status: int = 200) -> SiteAnswer:
    return SiteAnswer(site=site, status=status, body=json.dumps(body).encode())


def test_collections_are_concatenated_and_tagged() -> None:
    status, body = merge_success(
        [
            answer("Berlin", {"servers": [{"id": "a", "name": "x"}], "servers_links": []}),
            answer("Denver", {"servers": [{"id": "b", "name": "y"}]}),
        ]
    )
    merged = orjson.loads(body)
    assert status == 200
    assert [(s["id"], s["os-scope:site"]) for s in merged["servers"]] == [
        ("a", "Berlin"),
        ("b", "Denver"),
    ]
    assert "servers_links" not in merged


def test_identical_items_at_several_sites_appear_once() -> None:
    tiny = {"id": "1", "name": "m1.tiny", "ram": 512}
    _, body = merge_success(
        [
            answer("Berlin", {"flavors": [{**tiny, "links": [{"href": "http://berlin/1"}]}]}),
            answer(
                "Denver",
                {
                    "flavors": [
                        {**tiny, "links": [{"href": "http://denver/1"}]},
                        {"id": "9", "name": "only-denver"},
                    ]
                },
            ),
            answer("Paris", {"flavors": [{**tiny, "ram": 1024}]}),
        ]
    )
    flavors = orjson.loads(body)["flavors"]
    assert len(flavors) == 3
    first = flavors[0]
    assert first["os-scope:site"] == "Berlin" and first["os-scope:sites"] == ["Berlin", "Denver"]
    # A flavor that differs at Paris stays apart: the difference is real.
    assert {(f["id"], f["os-scope:site"]) for f in flavors[1:]} == {("9", "Denver"), ("1", "Paris")}


def test_a_server_moving_to_a_site_that_has_it_is_listed_there_only() -> None:
    """In the middle of a relocation both sites have the server: the source's says
    where it goes, and the list shows it once, where it now is."""
    leaving = {"id": "s1", "status": "MIGRATING", "os-edge:relocating_to": "Paris"}
    arrived = {"id": "s1", "status": "BUILD"}
    _, body = merge_success(
        [
            answer("Berlin", {"servers": [leaving, {"id": "s2", "status": "ACTIVE"}]}),
            answer("Paris", {"servers": [arrived]}),
        ]
    )
    listed = [(s["id"], s["os-scope:site"], s["status"]) for s in orjson.loads(body)["servers"]]
    assert listed == [("s2", "Berlin", "ACTIVE"), ("s1", "Paris", "BUILD")]
    # Before Paris has it (or when Paris is not asked), Berlin's says where it goes.
    _, body = merge_success(
        [answer("Berlin", {"servers": [leaving]}), answer("Denver", {"servers": []})]
    )
    [only] = orjson.loads(body)["servers"]
    assert (only["os-scope:site"], only["os-edge:relocating_to"]) == ("Berlin", "Paris")


def test_identical_documents_collapse() -> None:
    doc = {"version": {"id": "v2.1"}}
    assert json.loads(merge_success([answer("A", doc), answer("B", doc)])[1]) == doc


def test_collection_key_needs_exactly_one_list() -> None:
    assert collection_key({"images": [], "next": "x", "schema": "y"}) == "images"
    assert collection_key({"a": [], "b": []}) is None
    assert collection_key({"server": {}}) is None


def test_a_failed_write_lists_every_site() -> None:
    status, body = failure(
        "/compute/v2.1/servers",
        [
            answer("Berlin", {"server": {"id": "x"}}, 202),
            answer("Denver", {"forbidden": {"code": 403, "message": "Quota exceeded"}}, 403),
        ],
        write=True,
    )
    fault = orjson.loads(body)
    assert status == 403
    message = fault["forbidden"]["message"]
    assert "Berlin: ok 202" in message and "Denver: 403 Quota exceeded" in message
    assert [r["site"] for r in fault["os-scope:results"]] == ["Berlin", "Denver"]


def test_huge_integers_do_not_break_merging() -> None:
    big = {"id": "1", "extra": 2**70}
    _, body = merge_success([answer("A", {"things": [big]}), answer("B", {"things": [big]})])
    assert json.loads(body)["things"][0]["os-scope:sites"] == ["A", "B"]
