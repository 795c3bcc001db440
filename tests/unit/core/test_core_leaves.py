"""The leaf pieces of core: identifiers, the error tree, private files, token checks at
their edges, and revocation events as they travel between sites."""

from __future__ import annotations

import dataclasses
import os
import stat
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from edgefed.core import errors
from edgefed.core.ed25519 import Ed25519PrivateKey
from edgefed.core.files import write_private
from edgefed.core.ids import (
    DEFAULT_DOMAIN_ID,
    domain_id_for,
    is_uuid,
    new_hex_id,
    new_uuid,
    predictable_id,
)
from edgefed.core.revocation import MAX_SEQ, RevocationEvent, matches, token_fields
from edgefed.core.tokens import (
    TokenSigner,
    b64url,
    load_or_create_signing_key,
    verify_token,
)

# ---- ids ------------------------------------------------------------------------------------


def test_predictable_ids_are_pinned_forever() -> None:
    # Every site of every release must compute these: a change splits every fleet.
    assert (
        predictable_id("user", "admin")
        == uuid.uuid5(uuid.UUID("6f1c0b52-5d0e-5a7c-9a57-0e1d9ed6e4a1"), "user:default/admin").hex
    )
    assert (
        predictable_id("role", "member", domain_id="")
        == uuid.uuid5(uuid.UUID("6f1c0b52-5d0e-5a7c-9a57-0e1d9ed6e4a1"), "role:/member").hex
    )


def test_the_default_domain_is_default_in_any_case_and_others_are_hashed() -> None:
    assert domain_id_for("DEFAULT") == domain_id_for("Default") == DEFAULT_DOMAIN_ID
    eng = domain_id_for("Engineering")
    assert len(eng) == 32 and eng != domain_id_for("engineering")
    assert predictable_id("user", "alice", domain_id=eng) != predictable_id("user", "alice")


def test_random_ids_take_the_form_their_api_uses() -> None:
    hex_id, dashed = new_hex_id(), new_uuid()
    assert len(hex_id) == 32 and int(hex_id, 16) >= 0 and "-" not in hex_id
    assert uuid.UUID(dashed).version == 4 and dashed.count("-") == 4
    assert new_hex_id() != hex_id


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("6f1c0b52-5d0e-5a7c-9a57-0e1d9ed6e4a1", True),
        ("6f1c0b525d0e5a7c9a570e1d9ed6e4a1", True),  # Keystone's hex form
        ("not-a-uuid", False),
        ("", False),
        (None, False),
        (42, False),
    ],
)
def test_is_uuid(value: Any, ok: bool) -> None:
    assert is_uuid(value) is ok


# ---- the error tree -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "status", "parent"),
    [
        (errors.BadRequest, 400, errors.EdgefedError),
        (errors.ValidationFailed, 400, errors.BadRequest),
        (errors.Unauthorized, 401, errors.EdgefedError),
        (errors.Forbidden, 403, errors.EdgefedError),
        (errors.OverQuota, 403, errors.Forbidden),
        (errors.NotFound, 404, errors.EdgefedError),
        (errors.Conflict, 409, errors.EdgefedError),
        (errors.Gone, 410, errors.EdgefedError),
        (errors.PayloadTooLarge, 413, errors.EdgefedError),
        (errors.UnsupportedMediaType, 415, errors.EdgefedError),
        (errors.RangeNotSatisfiable, 416, errors.EdgefedError),
        (errors.UpstreamFailed, 502, errors.EdgefedError),
        (errors.Unavailable, 503, errors.EdgefedError),
        (errors.EdgefedError, 500, Exception),
    ],
)
def test_each_error_has_its_status_and_place_in_the_tree(
    cls: type[errors.EdgefedError], status: int, parent: type[Exception]
) -> None:
    assert cls.status == status and issubclass(cls, parent)
    exc = cls("what went wrong")
    assert (str(exc), exc.message, exc.headers, exc.details) == (
        "what went wrong",
        "what went wrong",
        {},
        {},
    )


def test_errors_carry_headers_details_fields_and_sources() -> None:
    exc = errors.Unauthorized("who?", headers={"WWW-Authenticate": "x"}, kind="Token")
    assert exc.headers == {"WWW-Authenticate": "x"} and exc.details == {"kind": "Token"}
    assert errors.ValidationFailed("bad", field="name").field == "name"
    assert errors.ValidationFailed("bad").field is None
    locked = errors.Locked("owned by Central", source="Central")
    assert isinstance(locked, errors.Conflict) and locked.status == 409
    assert locked.source == "Central"


# ---- private files --------------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_private_file_is_for_its_owner_in_a_directory_for_its_owner(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "key.pem"
    write_private(target, "secret")
    assert target.read_text() == "secret"
    assert (mode(target), mode(target.parent)) == (0o600, 0o700)


def test_writing_over_a_file_fixes_its_mode_and_its_directorys(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    directory.mkdir(mode=0o755)
    os.chmod(directory, 0o755)
    target = directory / "signing.pem"
    target.write_bytes(b"old")
    os.chmod(target, 0o644)
    (directory / "signing.pem.tmp").write_bytes(b"stale")  # an interrupted earlier write
    os.chmod(directory / "signing.pem.tmp", 0o666)
    write_private(target, b"new")
    assert target.read_bytes() == b"new"
    assert (mode(target), mode(directory)) == (0o600, 0o700)
    assert sorted(p.name for p in directory.iterdir()) == ["signing.pem"]


# ---- tokens at their edges ------------------------------------------------------------------

KEY = Ed25519PrivateKey.generate()
SIGNER = TokenSigner(KEY, kid="Berlin")
LOOKUP = {"Berlin": KEY.public_key()}.get


def forged(header: dict[str, Any], claims: dict[str, Any]) -> str:
    head = b64url(orjson.dumps(header))
    body = b64url(orjson.dumps(claims))
    signature = b64url(KEY.sign(f"{head}.{body}".encode()))
    return f"{head}.{body}.{signature}"


@pytest.mark.parametrize(
    ("header", "claims", "message"),
    [
        ({"alg": "none", "kid": "Berlin"}, {"iss": "Berlin", "exp": 9e9}, "not signed with EdDSA"),
        ({"alg": "EdDSA"}, {"iss": "Berlin", "exp": 9e9}, "unknown site \\(None\\)"),
        ({"alg": "EdDSA", "kid": 7}, {"iss": "Berlin", "exp": 9e9}, "unknown site"),
        ({"alg": "EdDSA", "kid": "Berlin"}, {"iss": "Paris", "exp": 9e9}, "issuer does not match"),
        ({"alg": "EdDSA", "kid": "Berlin"}, {"iss": "Berlin"}, "expired"),
        ({"alg": "EdDSA", "kid": "Berlin"}, {"iss": "Berlin", "exp": "never"}, "expired"),
        ({"alg": "EdDSA", "kid": "Berlin"}, ["not", "claims"], "issuer does not match"),
    ],
)
def test_a_token_signed_right_but_saying_the_wrong_things_is_refused(
    header: dict[str, Any], claims: Any, message: str
) -> None:
    with pytest.raises(errors.Unauthorized, match=message):
        verify_token(forged(header, claims), LOOKUP, now=1000.0)


def test_a_token_with_a_payload_that_is_not_json_is_refused() -> None:
    head = b64url(orjson.dumps({"alg": "EdDSA", "kid": "Berlin"}))
    body = b64url(b"\xff not json")
    signature = b64url(KEY.sign(f"{head}.{body}".encode()))
    with pytest.raises(errors.Unauthorized, match="payload is malformed"):
        verify_token(f"{head}.{body}.{signature}", LOOKUP, now=1000.0)


def test_a_damaged_key_file_is_named_and_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "signing.pem"
    write_private(path, "-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ValueError, match=str(path)):
        load_or_create_signing_key(path)
    assert "garbage" in path.read_text()


def test_a_token_names_its_site_in_its_header() -> None:
    token = SIGNER.sign({"iss": "Berlin", "exp": 9e9})
    header = orjson.loads(__import__("base64").urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": "EdDSA", "typ": "JWT", "kid": "Berlin"}


# ---- revocation events between sites --------------------------------------------------------

PARIS = Ed25519PrivateKey.generate()


def event(**over: Any) -> RevocationEvent:
    values: dict[str, Any] = {
        "issued_before": 100.0,
        "user_id": "u1",
        "origin": "Paris",
        "seq": 1,
        "created_at": 50.0,
    }
    values.update(over)
    return RevocationEvent(**values).signed_by(PARIS)


def test_an_event_travels_and_verifies_with_its_origins_key() -> None:
    sent = event(project_id="p1", floor=1)
    received = RevocationEvent.from_json(orjson.loads(orjson.dumps(sent.to_json())))
    assert received == sent
    received.verify(PARIS.public_key())
    assert received.shape == ("user_id", "project_id")


def test_any_change_to_an_event_breaks_its_signature() -> None:
    sent = event()
    for change in (
        {"user_id": "u2"},
        {"issued_before": 101.0},
        {"seq": 2},
        {"issuer": "Berlin"},
        {"floor": 2},
        {"origin": "Rome"},
    ):
        with pytest.raises(errors.ValidationFailed, match="signature does not verify"):
            dataclasses.replace(sent, **change).verify(PARIS.public_key())
    with pytest.raises(errors.ValidationFailed):
        sent.verify(Ed25519PrivateKey.generate().public_key())
    with pytest.raises(errors.ValidationFailed):
        dataclasses.replace(sent, signature="%%%").verify(PARIS.public_key())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"color": "red"}, "unknown revocation event field"),
        ({"user_id": 5}, "user_id must be a short text"),
        ({"user_id": ""}, "user_id must be a short text"),
        ({"audit_id": "x" * 101}, "audit_id must be a short text"),
        ({"issued_before": True}, "issued_before must be a number"),
        ({"issued_before": "1"}, "issued_before must be a number"),
        ({"issued_before": -1}, "issued_before must be a finite time"),
        ({"created_at": 1e12}, "created_at must be a finite time"),
        ({"seq": 0}, "seq must be 1 to"),
        ({"seq": MAX_SEQ + 1}, "seq must be 1 to"),
        ({"floor": 1.5}, "floor must be 1 to"),
        ({"origin": None}, "names its origin and is signed"),
        ({"signature": None}, "names its origin and is signed"),
        ({"user_id": None}, "must select tokens by some field"),
    ],
)
def test_an_event_from_the_wire_has_every_field_checked(
    change: dict[str, Any], message: str
) -> None:
    raw = {**event().to_json(), **change}
    with pytest.raises(errors.ValidationFailed, match=message):
        RevocationEvent.from_json(raw)


def test_an_event_is_an_object() -> None:
    with pytest.raises(errors.ValidationFailed, match="must be an object"):
        RevocationEvent.from_json(["user_id", "u1"])


def test_an_event_matches_tokens_issued_until_then_with_all_its_fields() -> None:
    ev = RevocationEvent(issued_before=100.0, user_id="u1", project_id="p1")
    token = {"iat": 100.0, "user": {"id": "u1"}, "project": {"id": "p1"}, "iss": "Berlin"}
    assert matches(ev, token)
    assert not matches(ev, {**token, "iat": 100.5})  # issued after it
    assert not matches(ev, {**token, "project": {"id": "p2"}})
    assert not matches(ev, {k: v for k, v in token.items() if k != "project"})
    assert token_fields({"application_credential": {"id": "ac"}, "domain": "bad"}) == (
        None,
        None,
        None,
        None,
        None,
        None,
        "ac",
    )
