"""Body hygiene before anything parses or buffers a body: size (413) and JSON nesting
depth (400), on every path but the streaming ones, whatever parser the handler uses."""

from __future__ import annotations

import pytest

from edgefed.api.middleware import MAX_JSON_DEPTH, JsonNesting
from edgefed.testkit.inprocess import InProcessSite


def deep(depth: int, opener: str = "[") -> bytes:
    if opener == "{":
        return ('{"a":' * depth + "1" + "}" * depth).encode()
    return ("[" * depth + "]" * depth).encode()


def fed(body: bytes, *, chunk: int, limit: int = 8) -> bool:
    nesting = JsonNesting(limit)
    return all(nesting.feed(body[i : i + chunk]) for i in range(0, len(body), chunk))


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1 << 20])
def test_nesting_follows_json_across_chunk_boundaries(chunk: int) -> None:
    assert fed(deep(8), chunk=chunk)
    assert not fed(deep(9), chunk=chunk)
    assert not fed(deep(9, "{"), chunk=chunk)
    # Brackets inside strings are text, escaped quotes do not end a string.
    text = b'{"k": "[[[[[[[[[[[[ \\" [[[[[[[[ \\\\", "v": [1, [2]]}'
    assert fed(text, chunk=chunk)
    # Many brackets side by side are not deep.
    assert fed(b"[" + b",".join([b"[1]"] * 1000) + b"]", chunk=chunk)
    # An escaped backslash ends the escape: the quote after it closes the string.
    assert not fed(b'["\\\\"' + b"[" * 9 + b"]" * 9 + b"]", chunk=chunk)


@pytest.mark.parametrize(
    "path",
    [
        "/compute/v2.1/servers",  # the handler parses with json.loads (RecursionError)
        "/network/v2.0/networks",  # likewise
        "/identity/v3/projects",  # a pydantic body
        "/identity/v3/auth/tokens",  # orjson
    ],
)
async def test_deeply_nested_json_is_a_400_naming_the_depth(
    site: InProcessSite, admin_headers: dict[str, str], path: str
) -> None:
    body = deep(5000)
    r = await site.client.post(
        path, content=body, headers={**admin_headers, "Content-Type": "application/json"}
    )
    assert r.status_code == 400, r.text
    assert f"nested deeper than {MAX_JSON_DEPTH} levels" in r.text


async def test_a_chunked_body_over_the_limit_is_a_413_and_not_read_to_the_end(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    limit = site.settings.max_request_body_bytes
    pulled = 0

    async def chunks():
        nonlocal pulled
        for _ in range(8 * limit // 65536):
            pulled += 65536
            yield b" " * 65536

    r = await site.client.post(
        "/identity/v3/projects",
        content=chunks(),
        headers={**admin_headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 413, r.text
    assert r.json()["error"]["message"] == f"Request body is larger than {limit} bytes"
    assert pulled <= limit + 65536
