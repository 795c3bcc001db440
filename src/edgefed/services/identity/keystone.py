"""Keystone's ways, for every identity resource: its words (the dialect), its default
policy, its collection envelope and links, and how an update body becomes changes.

Policy (Keystone's defaults, docs/identity.md): the ``admin`` role on any scope may do
everything; each resource names the verbs anyone authenticated may call (reading roles,
a domain, the catalog) and the verbs a caller may call on what is its own (a user
reading itself, a token's own project). Everything else is 403 naming the rule
(``identity:create_project``), before anything is looked up — and before the body is
validated, as Keystone enforces the policy before its schema.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

from edgefed.api.bodies import BodyWording
from edgefed.api.resource import CRUD, Access, Call, Dialect, Filter, Repository, Resource, action
from edgefed.core.errors import ValidationFailed
from edgefed.services.identity.schemas import Open

R = TypeVar("R")
P = TypeVar("P", bound=Repository[Any, Any])
Check = Callable[[Any, Call, Any, Any], Awaitable[None]]

KEYSTONE = Dialect(
    body=BodyWording(
        empty="'{key}' is a required property",
        malformed="Malformed JSON in request body.",
        not_object="'{key}' is a required property",
    ),
    not_found="Could not find {key}: {id}.",
    forbidden="You are not authorized to perform the requested action: identity:{rule}.",
    locked="{title} {id} is managed by sync source {origin}; change it there.",
)

FALSE_WORDS = frozenset({"0", "false", "f", "no", "n", "off"})

# Whether the caller may call a verb on the record ``id`` because it is its own.
Own = Callable[[Call, str | None], bool]


def query_flag(value: str | None) -> bool | None:
    """Keystone's reading of a boolean query parameter (absent = None)."""
    if value is None:
        return None
    return value.strip().lower() not in FALSE_WORDS


def present_flag(value: str | None) -> bool:
    """``?effective`` and ``?include_names``: present (and not false) means yes."""
    return value is not None and (value == "" or value.strip().lower() not in FALSE_WORDS)


def exact(*names: str) -> dict[str, Filter]:
    """List filters pushed to the store as they are (``?name=x``)."""
    return {name: Filter(field=name, description=f"Only this {name}.") for name in names}


ENABLED = {
    "enabled": Filter(
        field="enabled",
        parse=lambda values: query_flag(values[-1]),
        description="Only enabled (true) or disabled (false) ones.",
    )
}


def itself(call: Call, id: str | None) -> bool:
    """A user acting on itself."""
    return id is not None and call.principal.user_id == id


def rule_of(resource: Resource[Any, Any], verb: str) -> str:
    """Keystone's policy rule of a verb: ``list_projects``, ``get_project``,
    ``create_project``…; an action's verb is its rule (``change_password``)."""
    if verb == "list":
        return f"list_{resource.collection_key}"
    if verb == "show":
        return f"get_{resource.key}"
    return f"{verb}_{resource.key}" if verb in CRUD else verb


class KeystonePolicy(Access[Any]):
    """An admin may do everything; ``anyone`` verbs are open to every caller, ``own``
    verbs to a caller on what is its own; ``rules`` names the rule of a verb where it is
    not the usual one."""

    def __init__(
        self,
        *,
        anyone: Iterable[str] = (),
        own: Mapping[str, Own] | None = None,
        rules: Mapping[str, str] | None = None,
    ):
        self.anyone = frozenset(anyone)
        self.own = dict(own or {})
        self.rules = dict(rules or {})

    def admit(self, call: Call, verb: str, id: str | None) -> None:
        if verb in self.anyone or call.principal.is_admin:
            return
        own = self.own.get(verb)
        if own is not None and own(call, id):
            return
        rule = self.rules.get(verb) or rule_of(call.resource, verb)
        raise call.refuse(verb, "", id=id or "", rule=rule)


ADMIN_ONLY = KeystonePolicy()


class KeystoneResource(Resource[R, P]):
    """An identity resource: Keystone's words, links and collection envelope; a record
    received from a sync source (``origin``) changes only there. Its view is its
    ``extra`` attributes, its declared ``attributes`` and its links; an update sets what
    the body names (``changes_of``), the ``required`` fields never null."""

    dialect = KEYSTONE
    access: Access[Any] = ADMIN_ONLY
    # Update: fields that may not be set to null, fields that may not change at all.
    required: tuple[str, ...] = ()
    immutable: tuple[str, ...] = ()
    # Update: a null leaves a field as it is (the catalog's), instead of setting it.
    nulls_ignored = False

    def view(self, record: R, call: Call) -> dict[str, Any]:
        extra: dict[str, Any] = getattr(record, "extra", {})
        return {**extra, **self.copy(record), "links": self.links(call, record)}

    async def changes(self, call: Call, repo: P, record: R) -> dict[str, Any]:
        body = getattr(await call.body(), self.key)
        extra: dict[str, Any] = getattr(record, "extra", {})
        if self.nulls_ignored:
            return ignoring_nulls(body, extra)
        return changes_of(body, extra, required=self.required, immutable=self.immutable)

    def url(self, call: Call, path: str) -> str:
        return f"{call.ctx.public_url}/identity/v3{path}"

    def links(self, call: Call, record: R) -> dict[str, str]:
        return {"self": self.url(call, f"/{self.collection_key}/{self.id_of(record)}")}

    def collection(self, call: Call, views: list[dict[str, Any]]) -> dict[str, Any]:
        self_url = f"{call.ctx.public_url}{call.request.url.path}"
        return {
            self.collection_key: views,
            "links": {"self": self_url, "previous": None, "next": None},
        }

    def origin(self, call: Call, record: R) -> str | None:
        origin: str | None = getattr(record, "origin", None)
        return origin


def changes_of(
    body: Open,
    extra: Mapping[str, Any],
    *,
    required: Iterable[str] = (),
    immutable: Iterable[str] = (),
) -> dict[str, Any]:
    """What an update body sets: the fields it names (a ``description`` of null is
    empty; a null ``required`` field is a 400), and its other attributes merged into
    ``extra``. Keystone refuses to move a record to another domain or parent
    (``immutable``)."""
    extras = body.extras()
    for name in immutable:
        if name in extras:
            raise ValidationFailed(f"Update of `{name}` is not allowed.", field=name)
    changes = body.given()
    for name in required:
        if name in changes and changes[name] is None:
            raise ValidationFailed(f"Invalid input for field '{name}': None", field=name)
    if "description" in changes and changes["description"] is None:
        changes["description"] = ""
    if extras:
        changes["extra"] = {**extra, **extras}
    return changes


def ignoring_nulls(body: Open, extra: Mapping[str, Any]) -> dict[str, Any]:
    """What an update body sets when a null leaves a field as it is."""
    changes = {k: v for k, v in body.given().items() if v is not None}
    if body.extras():
        changes["extra"] = {**extra, **body.extras()}
    return changes


def head_and_get(path: str, *, verb: str, summary: str) -> Callable[[Check], tuple[Check, Check]]:
    """Keystone answers a check (204, or 404) on HEAD and on GET alike: two actions of
    one handler (``check, check_get = head_and_get(…)(_check)``)."""

    def mark(check: Check) -> tuple[Check, Check]:
        async def head(self: Any, call: Call, repo: Any, record: Any) -> None:
            await check(self, call, repo, record)

        async def get(self: Any, call: Call, repo: Any, record: Any) -> None:
            await check(self, call, repo, record)

        head.__doc__ = get.__doc__ = summary
        return (
            action("HEAD", path, status_code=204, verb=verb, name="check")(head),
            action("GET", path, status_code=204, verb=verb, name="check_get")(get),
        )

    return mark


def disables(body: Open) -> bool:
    """Whether an update body sets ``enabled`` to false (its tokens are revoked)."""
    return body.given().get("enabled") is False
