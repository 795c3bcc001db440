"""JSON responses serialised with orjson (fast, datetimes in ISO form).

orjson refuses integers beyond 64 bits, which a client may well have sent in an
extra property that we echo back; such rare bodies fall back to the stdlib encoder.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from starlette.responses import JSONResponse


def dumps(content: Any) -> bytes:
    try:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return json.dumps(content, default=str, separators=(",", ":")).encode()


class Json(JSONResponse):
    def render(self, content: Any) -> bytes:
        return dumps(content)
