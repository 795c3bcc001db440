"""Reading JSON request bodies, in the words of the service that reads them.

Each OpenStack service refuses a body it cannot use with its own sentences (Neutron's
"Resource body required", Glance's "Malformed JSON in request body", …), and clients
show those sentences to people; so the reader is one, the wording is the service's:
a ``BodyWording``.

``BodyLimit`` (api/middleware.py) has bounded the size and the nesting before any of
this runs. The parser is orjson: strict RFC 8259 JSON, so ``NaN``, ``Infinity`` and
lone surrogates are a 400 here rather than a 500 from the database later; an integer
beyond 64 bits is read as a float, which no integer attribute takes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request

from edgefed.core.errors import BadRequest


@dataclass(frozen=True, slots=True)
class BodyWording:
    """What a service answers (400) for a body it cannot use.

    ``{key}`` is the key the body should hold an object under (Neutron's ``network``),
    ``{error}`` what the parser said.
    """

    empty: str
    malformed: str
    not_object: str
    # The fault's type where the style has one (Neutron's ``NeutronError.type``).
    kind: str | None = None

    def refuse(self, template: str, **values: str) -> BadRequest:
        return BadRequest(template.format(**values), kind=self.kind)


def parse_json(raw: bytes, wording: BodyWording, *, key: str = "") -> Any:
    """The JSON document in ``raw``; BadRequest in ``wording`` when there is none."""
    if not raw:
        raise wording.refuse(wording.empty, key=key)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise wording.refuse(wording.malformed, key=key, error=str(exc)) from exc


async def read_json(request: Request, wording: BodyWording) -> Any:
    """Any JSON document (Glance's patch is a list; its image body is checked field by
    field by the handler)."""
    return parse_json(await request.body(), wording)


async def read_object(
    request: Request, wording: BodyWording, *, key: str | None = None
) -> dict[str, Any]:
    """A JSON object; with ``key``, the object under that key of a JSON object
    (``{"network": {…}}``), as a new dict the caller may change."""
    body = parse_json(await request.body(), wording, key=key or "")
    if key is not None:
        body = body.get(key) if isinstance(body, dict) else None
    if not isinstance(body, dict):
        raise wording.refuse(wording.not_object, key=key or "")
    return dict(body)


def parse_object(raw: bytes, wording: BodyWording) -> dict[str, Any]:
    """The JSON object in ``raw`` (a site-to-site body, read once for its signature)."""
    body = parse_json(raw, wording)
    if not isinstance(body, dict):
        raise wording.refuse(wording.not_object, key="")
    return body


# edgefed's own API (/edge/v1: fleet, sync, hosts) and its site-to-site calls.
EDGE_BODY = BodyWording(
    empty="The request body is empty: a JSON object is expected.",
    malformed="Malformed JSON in request body.",
    not_object="The request body must be a JSON object.",
)
# Nova's words (its JSON-schema validation answers these as 400s).
NOVA_BODY = BodyWording(
    empty="The request body is empty: a JSON object is expected.",
    malformed="Malformed request body: it is not valid JSON.",
    not_object="Malformed request body: a JSON object is expected.",
)
