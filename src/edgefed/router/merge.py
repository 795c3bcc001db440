"""Composing one answer from several sites' answers, by the JSON shape alone.

- A collection read (a JSON object with one list-valued key such as ``servers`` or
  ``images``, beside paging keys) is merged: the lists are concatenated and every item
  is tagged with its site under ``"os-scope:site"``. The same item (same ``id``, same
  content but for its links) at several sites — a seeded or synchronised flavor —
  appears once, tagged
  with the first site and listing all of them under ``"os-scope:sites"``; items that
  differ stay apart. Paging links are dropped: a ``limit``/``marker`` page of a
  multi-site listing has no single next page. An item that says it is moving to
  another site (``"os-edge:relocating_to": "Paris"``, a server in the middle of a
  relocation) is left out when that site answered with the same ``id``: the server is
  listed once, where it now is.
- Identical answers (a version document) collapse into one.
- Anything else: the first site's answer, tagged, with ``"os-scope:results"`` listing
  every site's status.
- A failure anywhere in a write: an error in the service's fault shape whose message and
  ``"os-scope:results"`` list every site's status. No silent partial success.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from edgefed.api.faults import fault_body, style_for
from edgefed.api.responses import dumps

SITE_TAG = "os-scope:site"
MOVING_TAG = "os-edge:relocating_to"
SITES_TAG = "os-scope:sites"
RESULTS_KEY = "os-scope:results"
PAGING_KEYS = ("links", "next", "first", "previous", "schema")


@dataclass
class SiteAnswer:
    site: str
    status: int
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    error: str | None = None  # transport error / timeout, when there is no answer

    @property
    def ok(self) -> bool:
        return self.error is None and self.status < 400

    def json(self) -> Any:
        try:
            return orjson.loads(self.body) if self.body else None
        except orjson.JSONDecodeError:
            return None

    def reason(self) -> str:
        if self.error is not None:
            return self.error
        body = self.json()
        message = (
            _message_of(body) if body is not None else self.body[:200].decode(errors="replace")
        )
        return f"{self.status} {message}".strip()

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"site": self.site, "status": self.status}
        if not self.ok:
            out["error"] = self.reason()
        return out


def _message_of(body: Any) -> str:
    if isinstance(body, dict):
        if isinstance(body.get("message"), str):
            return str(body["message"])
        for value in body.values():
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return str(value["message"])
    return ""


def collection_key(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    lists: list[str] = [
        str(k) for k, v in body.items() if isinstance(v, list) and not k.endswith("_links")
    ]
    others = [
        k for k in body if k not in lists and k not in PAGING_KEYS and not k.endswith("_links")
    ]
    if len(lists) == 1 and not others:
        return lists[0]
    return None


def _tag(item: Any, site: str) -> Any:
    if isinstance(item, dict):
        return {**item, SITE_TAG: site}
    return item


def _fingerprint(item: dict[str, Any]) -> bytes:
    """What makes two sites' items the same item: everything but their links (which
    name each site's own URL)."""
    core = {k: v for k, v in item.items() if k != "links"}
    try:
        return orjson.dumps(core, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # integers beyond 64 bits
        return json.dumps(core, sort_keys=True, default=str).encode()


def _merge_items(pairs: Sequence[tuple[str, Any]]) -> list[Any]:
    merged: list[Any] = []
    seen: dict[bytes, dict[str, Any]] = {}
    for site, item in pairs:
        if isinstance(item, dict) and "id" in item:
            fingerprint = _fingerprint(item)
            twin = seen.get(fingerprint)
            if twin is not None:
                twin[SITES_TAG].append(site)
                continue
            tagged = {**item, SITE_TAG: site, SITES_TAG: [site]}
            seen[fingerprint] = tagged
            merged.append(tagged)
        else:
            merged.append(_tag(item, site))
    arrived = {
        (item.get(SITE_TAG), item["id"])
        for item in merged
        if isinstance(item, dict) and "id" in item
    }
    merged = [
        item
        for item in merged
        if not (
            isinstance(item, dict)
            and isinstance(item.get(MOVING_TAG), str)
            and (item[MOVING_TAG], item.get("id")) in arrived
        )
    ]
    for item in merged:
        if isinstance(item, dict) and len(item.get(SITES_TAG, ())) == 1:
            del item[SITES_TAG]
    return merged


def merge_success(answers: Sequence[SiteAnswer]) -> tuple[int, bytes]:
    """The body for several successful answers (see module docstring)."""
    bodies = [a.json() for a in answers]
    first = answers[0]
    if all(b is not None for b in bodies):
        keys = {collection_key(b) for b in bodies}
        if len(keys) == 1 and None not in keys:
            key = keys.pop()
            assert key is not None
            pairs = [
                (a.site, item) for a, b in zip(answers, bodies, strict=True) for item in b[key]
            ]
            return first.status, dumps({key: _merge_items(pairs)})
        if all(a.body == first.body for a in answers):
            return first.status, first.body
        body = bodies[0]
        if isinstance(body, dict):
            tagged = {
                k: (_tag(v, first.site) if isinstance(v, dict) else v) for k, v in body.items()
            }
            tagged[RESULTS_KEY] = [a.summary() for a in answers]
            return first.status, dumps(tagged)
    return first.status, first.body


def failure(path: str, answers: Sequence[SiteAnswer], *, write: bool) -> tuple[int, bytes]:
    """An error listing every site's status."""
    failed = [a for a in answers if not a.ok]
    statuses = {a.status for a in failed if a.error is None}
    if len(statuses) == 1 and not any(a.error for a in failed) and len(failed) == len(answers):
        status = statuses.pop()  # the same answer everywhere (e.g. 404 at every site)
    elif any(400 <= a.status < 500 for a in failed if a.error is None):
        status = min(a.status for a in failed if a.error is None and 400 <= a.status < 500)
    elif all(a.error is not None for a in failed):
        status = 503
    else:
        status = 502
    what = "write" if write else "request"
    ok = len(answers) - len(failed)
    detail = "; ".join(
        f"{a.site}: {'ok ' + str(a.status) if a.ok else a.reason()}" for a in answers
    )
    message = f"The {what} failed at {len(failed)} of {len(answers)} sites"
    if write and ok:
        message += " (it succeeded at the others: no silent partial success)"
    message += f": {detail}"
    body = fault_body(style_for(path), status, message)
    body[RESULTS_KEY] = [a.summary() for a in answers]
    return status, dumps(body)
