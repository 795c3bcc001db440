"""Site-to-site calls: signed by the sender's site key over what it sent (path and query
as on the wire, body, target), accepted only from an active member addressed to us."""

from __future__ import annotations

import dataclasses
import time
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.requests import Request

from edgefed.api.context import Keyring
from edgefed.api.fleetview import FleetView
from edgefed.api.sitecalls import check_signed, signed_headers, signed_target, verified_site
from edgefed.core.ed25519 import Ed25519PrivateKey
from edgefed.core.errors import Unauthorized
from edgefed.core.fleet import Revocation, SiteEntry
from edgefed.core.sitesig import SIGNATURE_HEADER, SITE_HEADER, NonceCache
from edgefed.core.tokens import TokenSigner, public_key_b64

KEYS = {name: Ed25519PrivateKey.generate() for name in ("Berlin", "Paris", "Rome")}


def context(name: str, *, now: float | None = None) -> Any:
    clock = (lambda: now) if now is not None else time.time
    keyring = Keyring()
    view = FleetView(self_name=name, keyring=keyring, peers={})
    view.apply(
        SiteEntry(
            name=n, endpoint=f"http://{n.lower()}.test", public_key=public_key_b64(k.public_key())
        )
        for n, k in KEYS.items()
    )
    return SimpleNamespace(
        name=name,
        fleet=view,
        keyring=keyring,
        nonces=NonceCache(),
        clock=clock,
        signer=TokenSigner(KEYS[name], kid=name),
    )


def incoming(
    headers: dict[str, str], *, path: str = "/edge/v1/sync/push", raw: bytes | None = None
) -> Request:
    plain, _, query = path.partition("?")
    return Request(
        {
            "type": "http",
            "method": "POST",
            "path": plain,
            "raw_path": raw if raw is not None else plain.encode(),
            "query_string": query.encode(),
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        }
    )


def test_a_call_signed_by_a_member_for_this_site_names_its_sender() -> None:
    paris, berlin = context("Paris"), context("Berlin")
    body = b'{"rows": []}'
    headers = signed_headers(
        paris, target="Berlin", method="POST", path="/edge/v1/sync/push", body=body
    )
    assert headers[SITE_HEADER] == "Paris"
    assert verified_site(incoming(headers), berlin, body) == "Paris"


def test_the_query_and_the_path_as_sent_are_signed() -> None:
    paris, berlin = context("Paris"), context("Berlin")
    path = "/edge/v1/sync/pull?since=5&kind=image"
    headers = signed_headers(paris, target="Berlin", method="POST", path=path, body=b"")
    assert verified_site(incoming(headers, path=path), berlin, b"") == "Paris"
    # The same signature on another query: refused.
    with pytest.raises(Unauthorized, match="signature is invalid"):
        verified_site(incoming(headers, path="/edge/v1/sync/pull?since=0&kind=image"), berlin, b"")
    # Percent-encoding counts as sent: the raw path is what was signed.
    encoded = "/edge/v1/images/a%2Fb"
    headers = signed_headers(paris, target="Berlin", method="POST", path=encoded, body=b"")
    request = incoming(headers, path="/edge/v1/images/a/b", raw=encoded.encode())
    assert signed_target(request) == encoded
    assert verified_site(request, berlin, b"") == "Paris"


def test_a_call_is_good_once() -> None:
    paris, berlin = context("Paris"), context("Berlin")
    headers = signed_headers(
        paris, target="Berlin", method="POST", path="/edge/v1/sync/push", body=b""
    )
    verified_site(incoming(headers), berlin, b"")
    with pytest.raises(Unauthorized, match="replayed"):
        verified_site(incoming(headers), berlin, b"")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({SITE_HEADER: "Atlantis"}, "'Atlantis' is not an active member"),
        ({SITE_HEADER: "Berlin"}, "'Berlin' is not an active member"),
        ({SITE_HEADER: ""}, "'' is not an active member"),
        ({SITE_HEADER: "Rome"}, "signature is invalid"),  # Paris's signature, Rome's name
        ({SIGNATURE_HEADER: ""}, "not signed"),
    ],
)
def test_anyone_else_is_refused(change: dict[str, str], message: str) -> None:
    paris, berlin = context("Paris"), context("Berlin")
    headers = signed_headers(
        paris, target="Berlin", method="POST", path="/edge/v1/sync/push", body=b""
    )
    with pytest.raises(Unauthorized, match=message):
        verified_site(incoming({**headers, **change}), berlin, b"")


def test_a_call_for_another_site_or_from_a_revoked_one_is_refused() -> None:
    paris, berlin = context("Paris"), context("Berlin")
    headers = signed_headers(
        paris, target="Rome", method="POST", path="/edge/v1/sync/push", body=b""
    )
    with pytest.raises(Unauthorized, match="addressed to 'Rome', not to 'Berlin'"):
        verified_site(incoming(headers), berlin, b"")
    entry = berlin.fleet.entries["Paris"]
    berlin.fleet.apply([dataclasses.replace(entry, revocation=Revocation(by="Berlin", at=1.0))])
    headers = signed_headers(
        paris, target="Berlin", method="POST", path="/edge/v1/sync/push", body=b""
    )
    with pytest.raises(Unauthorized, match="'Paris' is not an active member"):
        verified_site(incoming(headers), berlin, b"")


def test_a_site_without_a_registry_takes_no_site_calls() -> None:
    paris, berlin = context("Paris"), context("Berlin")
    berlin.fleet = None
    headers = signed_headers(
        paris, target="Berlin", method="POST", path="/edge/v1/sync/push", body=b""
    )
    with pytest.raises(Unauthorized, match="not an active member"):
        verified_site(incoming(headers), berlin, b"")


def test_a_call_signed_with_a_clock_far_off_is_refused() -> None:
    paris, berlin = context("Paris", now=time.time() - 301), context("Berlin")
    headers = signed_headers(
        paris, target="Berlin", method="POST", path="/edge/v1/sync/push", body=b""
    )
    with pytest.raises(Unauthorized, match="clock skew"):
        verified_site(incoming(headers), berlin, b"")


def test_a_join_is_checked_against_the_key_it_announces() -> None:
    lyon_key = Ed25519PrivateKey.generate()
    berlin = context("Berlin")
    lyon = SimpleNamespace(name="Lyon", clock=time.time, signer=TokenSigner(lyon_key, kid="Lyon"))
    headers = signed_headers(
        lyon, target="Berlin", method="POST", path="/edge/v1/sync/push", body=b"x"
    )  # type: ignore[arg-type]
    check_signed(incoming(headers), berlin, key=lyon_key.public_key(), sender="Lyon", body=b"x")
    with pytest.raises(Unauthorized):
        headers = signed_headers(
            lyon, target="Berlin", method="POST", path="/edge/v1/sync/push", body=b"x"
        )  # type: ignore[arg-type]
        check_signed(
            incoming(headers), berlin, key=KEYS["Paris"].public_key(), sender="Lyon", body=b"x"
        )
