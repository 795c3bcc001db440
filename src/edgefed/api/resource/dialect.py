"""How one service words its answers: envelopes, the update verb, and its 4xx sentences.

The fault *shape* (``{"NeutronError": …}``, Glance's webob body, …) is chosen by path in
``api.faults``; a dialect chooses the *words*, which clients show to people and which
differ between the OpenStack services for the same situation:

    Neutron   Network 7f… could not be found.            (type NetworkNotFound)
    Glance    No image found with ID 7f…
    Keystone  Could not find project: 7f….

Templates are ``str.format`` strings. They may use ``{title}`` (the resource's name
in a sentence: "Network", "Security group"), ``{Kind}`` (the same as one word:
"SecurityGroup"), ``{key}`` ("network"), ``{collection}`` ("networks"), ``{id}``,
``{verb}`` (list, show, create, update, delete or an action's name), ``{rule}`` (the
policy rule: ``<verb>_<key>`` unless the check names another), ``{why}`` (what the
policy wanted) and ``{origin}`` (the sync source that owns a record).
"""

from __future__ import annotations

from dataclasses import dataclass

from edgefed.api.bodies import EDGE_BODY, BodyWording
from edgefed.core.errors import Forbidden, Locked, NotFound


@dataclass(frozen=True, slots=True)
class Dialect:
    body: BodyWording
    not_found: str
    forbidden: str
    locked: str
    # One record answered as ``{key: view}`` (Neutron, Keystone, edge) or bare (Glance).
    keyed_views: bool = True
    # Request bodies as ``{key: {…}}`` (Neutron, Keystone) or bare (Glance).
    keyed_bodies: bool = True
    update_method: str = "PATCH"
    # Fault types, where the style has them (Neutron).
    not_found_kind: str | None = None
    forbidden_kind: str | None = None

    def words(self, template: str, **values: str) -> str:
        return template.format(**values)


# edgefed's own API (``/edge/v1``: hosts, fleet): Keystone's fault shape, plain words.
EDGE = Dialect(
    body=EDGE_BODY,
    not_found="{title} {id} could not be found.",
    forbidden="Policy doesn't allow {rule} to be performed ({why}).",
    locked="{title} {id} is managed by sync source {origin}; change it there.",
    keyed_bodies=False,
)


def kind_of(title: str) -> str:
    """ "Security group" → "SecurityGroup" (Neutron's fault types)."""
    return "".join(word[:1].upper() + word[1:] for word in title.split())


def not_found(dialect: Dialect, words: dict[str, str], template: str = "") -> NotFound:
    kind = dialect.not_found_kind
    return NotFound(
        dialect.words(template or dialect.not_found, **words),
        kind=dialect.words(kind, **words) if kind else None,
    )


def forbidden(dialect: Dialect, words: dict[str, str]) -> Forbidden:
    kind = dialect.forbidden_kind
    return Forbidden(
        dialect.words(dialect.forbidden, **words),
        kind=dialect.words(kind, **words) if kind else None,
    )


def locked(dialect: Dialect, words: dict[str, str]) -> Locked:
    return Locked(dialect.words(dialect.locked, **words), source=words["origin"])
