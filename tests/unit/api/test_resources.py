"""The resource kit (edgefed.api.resource): routes built from a declaration, over an
in-memory repository, in a bare app whose caller comes from test headers."""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from edgefed.api import faults
from edgefed.api.auth import Principal
from edgefed.api.bodies import BodyWording
from edgefed.api.resource import (
    READ_ONLY,
    AdminOnly,
    Call,
    Dialect,
    Filter,
    ProjectOwned,
    Resource,
    action,
)
from edgefed.api.service import mount
from edgefed.core.errors import Conflict, EdgefedError

# -- a resource to build ---------------------------------------------------------------


@dataclass(frozen=True)
class Widget:
    id: str
    name: str
    project_id: str
    shared: bool = False
    origin: str | None = None


@dataclass(frozen=True)
class NewWidget:
    name: str
    project_id: str


class Widgets:
    """An in-memory repository that records what the kit asked of it."""

    def __init__(self, records: Sequence[Widget] = ()) -> None:
        self.records = {r.id: r for r in records}
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def get(self, *, id: str) -> Widget | None:
        return self.records.get(id)

    async def list(
        self, *, filters: Mapping[str, object] | None = None, limit: int | None = None,
        after: str | None = None,
    ) -> Sequence[Widget]:  # fmt: skip
        self.calls.append(
            ("list", {"filters": dict(filters or {}), "limit": limit, "after": after})
        )
        found = [
            r
            for r in self.records.values()
            if all(
                getattr(r, k) in (v if isinstance(v, tuple) else (v,))
                for k, v in (filters or {}).items()
            )
        ]
        if after is not None:
            ids = [r.id for r in found]
            if after not in ids:
                raise LookupError(after)
            found = found[ids.index(after) + 1 :]
        return found[:limit] if limit is not None else found

    async def create(self, *, new: NewWidget) -> Widget:
        record = Widget(id=f"w{len(self.records) + 1}", name=new.name, project_id=new.project_id)
        self.records[record.id] = record
        return record

    async def update(self, *, id: str, changes: Mapping[str, Any]) -> Widget | None:
        self.calls.append(("update", dict(changes)))
        if id not in self.records:
            return None
        self.records[id] = dataclasses.replace(self.records[id], **changes)
        return self.records[id]

    async def delete(self, *, id: str) -> bool:
        self.calls.append(("delete", {"id": id}))
        return self.records.pop(id, None) is not None


TEST = Dialect(
    body=BodyWording(
        empty="Send a {key}.", malformed="Not JSON: {error}", not_object="Where is '{key}'?"
    ),
    not_found="No {title} {id} here.",
    not_found_kind="{Kind}Missing",
    forbidden="rule:{rule} refused ({why})",
    forbidden_kind="Refused",
    locked="{title} {id} belongs to {origin}.",
    update_method="PUT",
)
# Neutron's fault shape (by path prefix), so that fault types are seen too.
BASE = "/network/v2.0"


class Rename(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str


class Gadget(Resource[Widget, Widgets]):
    key = "gadget_part"
    collection_key = "gadget_parts"
    path = "/v2.0/gadgets"
    dialect = TEST
    access = ProjectOwned[Widget](project=lambda w: w.project_id, shared=lambda w: w.shared)
    filters = {"name": Filter(field="name", parse=tuple, description="Only these names.")}
    paging = True
    body_schema = {"type": "object", "properties": {"name": {"type": "string"}}}

    def repository(self, call: Call) -> Widgets:
        repo: Widgets = call.ctx.widgets
        return repo

    def view(self, record: Widget, call: Call) -> dict[str, Any]:
        return {"id": record.id, "name": record.name, "project_id": record.project_id}

    def origin(self, call: Call, record: Widget) -> str | None:
        return record.origin

    async def create(self, call: Call, repo: Widgets) -> Widget:
        data = await call.body()
        return await repo.create(new=NewWidget(name=str(data["name"]), project_id="alpha"))

    async def changes(self, call: Call, repo: Widgets, record: Widget) -> dict[str, Any]:
        data = await call.body()
        return {"name": data["name"]} if "name" in data else {}

    async def before_delete(self, call: Call, repo: Widgets, record: Widget) -> None:
        if record.name == "keep":
            raise Conflict("kept")

    @action("POST", "/polish", writes=True, status_code=204)
    async def polish(self, call: Call, repo: Widgets, record: Widget) -> None:
        await repo.update(id=record.id, changes={"name": record.name + "*"})

    @action("POST", "/rename", body=Rename)
    async def rename(self, call: Call, repo: Widgets, record: Widget) -> Widget | None:
        """Rename a gadget part."""
        return await repo.update(id=record.id, changes={"name": call.model(Rename).name})


class LateGadget(Gadget):
    """Glance's order: look the record up before reading the body."""

    path = "/v2.0/late"
    read_body_first = False


class Shelf(Resource[Widget, Widgets]):
    """Read-only, admins only."""

    key = "shelf"
    collection_key = "shelves"
    path = "/v2.0/shelves"
    dialect = TEST
    verbs = READ_ONLY
    access = AdminOnly("shelves")

    def repository(self, call: Call) -> Widgets:
        repo: Widgets = call.ctx.widgets
        return repo

    def view(self, record: Widget, call: Call) -> dict[str, Any]:
        return {"id": record.id}

    @action("POST", "/label", body=Rename)
    async def label(self, call: Call, repo: Widgets, record: Widget) -> dict[str, Any]:
        return {"labelled": call.model(Rename).name}


class Part(Resource[Widget, Widgets]):
    """Nested: the parts of one gadget (a gadget's parts are widgets named after it)."""

    key = "part"
    collection_key = "parts"
    path = "/v2.0/gadgets/{gadget_part_id}/parts"
    dialect = dataclasses.replace(TEST, keyed_views=False)
    parent = Gadget()
    verbs = READ_ONLY

    def repository(self, call: Call) -> Widgets:
        return Widgets([w for w in call.ctx.widgets.records.values() if w.name == call.parent.id])

    def view(self, record: Widget, call: Call) -> dict[str, Any]:
        return {"id": record.id, "of": call.parent.id}


class CallerFromHeaders:
    """Puts the caller the test headers describe where ``principal_of`` finds it."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers") or [])
        project = headers.get(b"x-project", b"alpha").decode()
        roles = frozenset(headers.get(b"x-roles", b"member,reader").decode().split(","))
        claims = {"project": {"id": project}, "iss": "test", "user": {"id": "u"}}
        scope["edgefed.principal"] = Principal("t", claims, roles, "u")
        await self.app(scope, receive, send)


def widgets() -> Widgets:
    return Widgets(
        [
            Widget("a1", "one", "alpha"),
            Widget("a2", "two", "alpha"),
            Widget("b1", "three", "beta"),
            Widget("s1", "four", "beta", shared=True),
            Widget("l1", "five", "alpha", origin="Denver"),
            Widget("k1", "keep", "alpha"),
            Widget("p1", "a1", "alpha"),
        ]
    )


@pytest.fixture
def repo() -> Widgets:
    return widgets()


@pytest.fixture
async def client(repo: Widgets):
    app = FastAPI()
    app.state.ctx = types.SimpleNamespace(widgets=repo)
    app.add_exception_handler(EdgefedError, faults.handle_edgefed_error)
    app.add_exception_handler(RequestValidationError, faults.handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, faults.handle_http_exception)
    for resource in (Gadget(), LateGadget(), Shelf(), Part()):
        mount(app.router, resource.routes(), prefix="/network")
    app.add_middleware(CallerFromHeaders)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        c.app = app  # type: ignore[attr-defined]
        yield c


ADMIN = {"x-roles": "admin"}
READER = {"x-roles": "reader"}
BETA = {"x-project": "beta"}


def fault(r: httpx.Response) -> dict[str, Any]:
    return r.json()["NeutronError"]


# -- reads --------------------------------------------------------------------------------


async def test_a_list_shows_what_the_caller_may_read_in_the_collection_envelope(client) -> None:
    r = await client.get(f"{BASE}/gadgets")
    assert r.status_code == 200
    ids = [g["id"] for g in r.json()["gadget_parts"]]
    # Alpha's own and beta's shared one; not beta's private one.
    assert ids == ["a1", "a2", "s1", "l1", "k1", "p1"]
    r = await client.get(f"{BASE}/gadgets", headers=ADMIN)
    assert "b1" in [g["id"] for g in r.json()["gadget_parts"]]


async def test_filters_and_paging_go_to_the_repository(client, repo: Widgets) -> None:
    r = await client.get(f"{BASE}/gadgets?name=one&name=two&limit=1&marker=a1")
    assert r.status_code == 200, r.text
    assert repo.calls[-1] == (
        "list", {"filters": {"name": ("one", "two")}, "limit": 1, "after": "a1"}
    )  # fmt: skip
    assert [g["id"] for g in r.json()["gadget_parts"]] == ["a2"]
    r = await client.get(f"{BASE}/gadgets?marker=nope")
    assert r.status_code == 400 and "marker nope not found" in fault(r)["message"]
    r = await client.get(f"{BASE}/gadgets?limit=-1")
    assert r.status_code == 400


async def test_show_answers_404_in_the_dialects_words_for_missing_and_unseen(client) -> None:
    r = await client.get(f"{BASE}/gadgets/a1")
    assert r.status_code == 200 and r.json() == {
        "gadget_part": {"id": "a1", "name": "one", "project_id": "alpha"}
    }
    for missing in ("zz", "b1"):  # b1 exists, but alpha does not see it
        r = await client.get(f"{BASE}/gadgets/{missing}")
        assert r.status_code == 404
        assert fault(r) == {
            "type": "GadgetPartMissing",
            "message": f"No Gadget part {missing} here.",
            "detail": "",
        }


# -- writes -------------------------------------------------------------------------------


async def test_create_reads_the_body_in_the_dialects_words(client) -> None:
    r = await client.post(f"{BASE}/gadgets", content=b"{nope")
    assert r.status_code == 400 and fault(r)["message"].startswith("Not JSON: ")
    r = await client.post(f"{BASE}/gadgets", content=b"")
    assert r.status_code == 400 and fault(r)["message"] == "Send a gadget_part."
    r = await client.post(f"{BASE}/gadgets", json={"name": "x"})
    assert r.status_code == 400 and fault(r)["message"] == "Where is 'gadget_part'?"
    r = await client.post(f"{BASE}/gadgets", json={"gadget_part": {"name": "new"}})
    assert r.status_code == 201, r.text
    assert r.json()["gadget_part"]["name"] == "new"


async def test_update_checks_policy_then_the_sync_lock(client, repo: Widgets) -> None:
    body = {"gadget_part": {"name": "renamed"}}
    r = await client.put(f"{BASE}/gadgets/a1", json=body, headers=READER)
    assert r.status_code == 403
    assert fault(r) == {
        "type": "Refused",
        "message": "rule:update_gadget_part refused (the member role on the project is required)",
        "detail": "",
    }
    r = await client.put(f"{BASE}/gadgets/s1", json=body)  # seen (shared), not alpha's
    assert r.status_code == 403 and "belongs to another project" in fault(r)["message"]
    r = await client.put(f"{BASE}/gadgets/l1", json=body, headers=ADMIN)
    assert r.status_code == 409 and fault(r)["message"] == "Gadget part l1 belongs to Denver."
    assert not [c for c in repo.calls if c[0] == "update"]
    r = await client.put(f"{BASE}/gadgets/a1", json=body)
    assert r.status_code == 200 and r.json()["gadget_part"]["name"] == "renamed"
    assert repo.records["a1"].name == "renamed"


async def test_an_update_without_changes_writes_nothing(client, repo: Widgets) -> None:
    r = await client.put(f"{BASE}/gadgets/a1", json={"gadget_part": {}})
    assert r.status_code == 200 and r.json()["gadget_part"]["name"] == "one"
    assert not [c for c in repo.calls if c[0] == "update"]


async def test_the_body_is_read_before_or_after_the_lookup_as_declared(client) -> None:
    # Most services: a malformed body is a 400 even for a record that does not exist.
    r = await client.put(f"{BASE}/gadgets/zz", content=b"{nope")
    assert r.status_code == 400
    # Glance: the lookup comes first.
    r = await client.put(f"{BASE}/late/zz", content=b"{nope")
    assert r.status_code == 404
    r = await client.put(f"{BASE}/late/a1", content=b"{nope")
    assert r.status_code == 400


async def test_delete_runs_the_resources_check_and_answers_204(client, repo: Widgets) -> None:
    r = await client.delete(f"{BASE}/gadgets/k1")
    assert r.status_code == 409 and "k1" in repo.records
    r = await client.delete(f"{BASE}/gadgets/b1")
    assert r.status_code == 404 and "b1" in repo.records
    r = await client.delete(f"{BASE}/gadgets/a2")
    assert r.status_code == 204 and r.content == b""
    assert "a2" not in repo.records


# -- declaration options ------------------------------------------------------------------


async def test_verbs_not_declared_have_no_route(client) -> None:
    r = await client.post(f"{BASE}/shelves", json={"shelf": {}}, headers=ADMIN)
    assert r.status_code == 405
    r = await client.delete(f"{BASE}/shelves/a1", headers=ADMIN)
    assert r.status_code == 405


async def test_admin_only_refuses_before_any_lookup(client) -> None:
    r = await client.get(f"{BASE}/shelves/no-such-shelf")
    assert r.status_code == 403
    r = await client.get(f"{BASE}/shelves/no-such-shelf", headers=ADMIN)
    assert r.status_code == 404
    r = await client.get(f"{BASE}/shelves", headers=ADMIN)
    assert len(r.json()["shelves"]) == len(widgets().records)


async def test_a_nested_resource_finds_its_parent_first(client) -> None:
    r = await client.get(f"{BASE}/gadgets/b1/parts")
    assert r.status_code == 404 and fault(r)["type"] == "GadgetPartMissing"
    r = await client.get(f"{BASE}/gadgets/a1/parts")
    assert r.status_code == 200 and r.json() == {"parts": [{"id": "p1", "of": "a1"}]}
    r = await client.get(f"{BASE}/gadgets/a1/parts/p1")
    assert r.json() == {"id": "p1", "of": "a1"}  # a bare view (keyed_views=False)
    r = await client.get(f"{BASE}/gadgets/a2/parts/p1")
    assert r.status_code == 404 and fault(r)["type"] == "PartMissing"


async def test_an_action_that_writes_is_checked_like_an_update(client, repo: Widgets) -> None:
    r = await client.post(f"{BASE}/gadgets/a1/polish", headers=READER)
    assert r.status_code == 403 and "rule:polish_gadget_part" in fault(r)["message"]
    r = await client.post(f"{BASE}/gadgets/l1/polish", headers=ADMIN)
    assert r.status_code == 409
    r = await client.post(f"{BASE}/gadgets/a1/polish")
    assert r.status_code == 204 and repo.records["a1"].name == "one*"


async def test_an_action_with_a_model_admits_the_caller_before_validating(client) -> None:
    # A caller the resource refuses learns nothing of the body's schema.
    r = await client.post(f"{BASE}/shelves/a1/label", json={"bogus": 1})
    assert r.status_code == 403
    r = await client.post(f"{BASE}/shelves/a1/label", json={"bogus": 1}, headers=ADMIN)
    assert r.status_code == 400
    r = await client.post(f"{BASE}/shelves/a1/label", json={"name": "x"}, headers=ADMIN)
    assert r.json() == {"labelled": "x"}
    r = await client.post(f"{BASE}/gadgets/a1/rename", json={"bogus": 1})
    assert r.status_code == 400
    assert "'name' is a required property" in fault(r)["message"]
    r = await client.post(f"{BASE}/gadgets/a1/rename", json={"name": "fresh"})
    assert r.status_code == 200 and r.json()["gadget_part"]["name"] == "fresh"


def test_the_openapi_document_says_what_each_route_takes(client) -> None:
    doc = client.app.openapi()  # type: ignore[attr-defined]
    item = doc["paths"]["/network/v2.0/gadgets/{gadget_part_id}"]
    assert set(item) == {"get", "put", "delete"}
    assert item["get"]["parameters"][0] == {
        "name": "gadget_part_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    }
    body = item["put"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["gadget_part"]
    assert body["properties"]["gadget_part"]["properties"]["name"] == {"type": "string"}
    listing = doc["paths"]["/network/v2.0/gadgets"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {"name", "limit", "marker"}
    assert listing["summary"] == "List gadget parts"
    rename = doc["paths"]["/network/v2.0/gadgets/{gadget_part_id}/rename"]["post"]
    assert rename["summary"] == "Rename a gadget part."
    assert "Rename" in str(rename["requestBody"])
    assert "/network/v2.0/shelves" in doc["paths"]
    assert set(doc["paths"]["/network/v2.0/shelves/{shelf_id}"]) == {"get"}
    assert doc["paths"]["/network/v2.0/gadgets"]["post"]["responses"].keys() == {"201"}


def test_declared_attributes_are_copied_under_their_wire_names() -> None:
    class Labelled(Shelf):
        attributes = ("id", ("label", "name"), "shared")

    class Single(Shelf):
        attributes = (("only", "project_id"),)

    widget = Widget("w1", "one", "alpha", shared=True)
    assert Labelled().copy(widget) == {"id": "w1", "label": "one", "shared": True}
    assert Single().copy(widget) == {"only": "alpha"}
    assert Shelf().copy(widget) == {}
