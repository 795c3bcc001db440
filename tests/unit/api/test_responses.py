"""Bodies that orjson refuses still render (a client's huge integer echoed back)."""

from __future__ import annotations

import json

from edgefed.api.responses import Json, dumps


def test_huge_integers_render() -> None:
    body = {"project": {"name": "x", "extra": 2**70}}
    assert json.loads(dumps(body)) == body
    assert json.loads(Json(body).body) == body
