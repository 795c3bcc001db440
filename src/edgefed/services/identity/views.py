"""Keystone's shapes shared by the hand-written routes: links, envelopes, token times."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from edgefed.services.identity.state import IdentityState


def api_url(state: IdentityState, path: str) -> str:
    return f"{state.ctx.public_url}/identity/v3{path}"


def collection(
    state: IdentityState, key: str, items: Iterable[dict[str, Any]], *, path: str
) -> dict[str, Any]:
    return {
        key: list(items),
        "links": {"self": api_url(state, path), "previous": None, "next": None},
    }


def isotime(seconds: float) -> str:
    """Keystone's token time format: ``2015-11-05T22:00:11.000000Z``."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
