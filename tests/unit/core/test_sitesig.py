"""Signed site requests: for one target, fresh, once."""

from __future__ import annotations

from typing import Any

import pytest

from edgefed.core.ed25519 import Ed25519PrivateKey
from edgefed.core.errors import Unauthorized
from edgefed.core.sitesig import (
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TARGET_HEADER,
    TIMESTAMP_HEADER,
    NonceCache,
    sign_request,
    verify_request,
)

KEY = Ed25519PrivateKey.generate()


def signed(*, target: str = "Berlin", now: float = 1000.0, body: bytes = b"{}") -> dict[str, str]:
    return sign_request(
        KEY, site="Paris", target=target, method="POST", path="/p?q=1", body=body, now=now
    )


def check(headers: dict[str, str], nonces: NonceCache, **over: Any) -> None:
    args: dict[str, Any] = {
        "sender": "Paris",
        "method": "POST",
        "path": "/p?q=1",
        "body": b"{}",
        "timestamp": headers[TIMESTAMP_HEADER],
        "nonce": headers[NONCE_HEADER],
        "target": headers[TARGET_HEADER],
        "signature": headers[SIGNATURE_HEADER],
        "expected_target": "Berlin",
        "nonces": nonces,
        "now": 1000.0,
    }
    verify_request(KEY.public_key(), **{**args, **over})


def test_a_request_is_good_once() -> None:
    nonces = NonceCache()
    headers = signed()
    check(headers, nonces)
    with pytest.raises(Unauthorized, match="replayed"):
        check(headers, nonces)


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"expected_target": "Denver"}, "addressed to 'Berlin', not to 'Denver'"),
        ({"timestamp": "nan"}, "too old or from the future"),
        ({"timestamp": "inf"}, "too old or from the future"),
        ({"now": 1400.0}, "too old or from the future"),
        ({"path": "/p?q=2"}, "signature is invalid"),
        ({"body": b"[]"}, "signature is invalid"),
        ({"nonce": ""}, "no valid nonce"),
    ],
)
def test_anything_else_is_refused(over: dict[str, Any], message: str) -> None:
    with pytest.raises(Unauthorized, match=message):
        check(signed(), NonceCache(), **over)


def test_a_restart_forgets_no_replay_and_memory_stays_bounded() -> None:
    restarted = NonceCache(not_before=1000.0)
    with pytest.raises(Unauthorized, match="too old to be checked"):
        check(signed(now=999.0), restarted)
    small = NonceCache(max_entries=2)
    first = signed(now=990.0)
    check(first, small)
    check(signed(now=995.0), small)
    check(signed(now=999.0), small)  # evicts the first: requests up to 990 are refused
    assert len(small) == 2
    with pytest.raises(Unauthorized, match="too old to be checked"):
        check(first, small)
