"""Keypairs (os-keypairs), per user: import a public key or (before 2.92) generate one.

Fingerprints are computed as Nova computes them: the MD5 of the key blob in colon-hex
for SSH keys, the SHA-1 of the DER certificate for x509.

``cryptography`` is imported by the functions that need it: its extension is the
largest a site could load (docs/bench.md), and a site that never handles a keypair
should not carry it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from edgefed.api.auth import Principal, current_principal
from edgefed.api.responses import Json
from edgefed.core.errors import BadRequest, NotFound
from edgefed.services.compute.body import invalid, read_json, req_str, section
from edgefed.services.compute.microversion import APIVersion, MicroversionRoute, api_version
from edgefed.services.compute.quota_limits import over_quota, project_limits
from edgefed.services.compute.server_views import usage_time
from edgefed.services.compute.state import ComputeState, compute_state
from edgefed.store.compute import KeypairRecord

router = APIRouter(route_class=MicroversionRoute)

SSH_TYPES = (
    "ssh-rsa",
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-dss",
)
NAME_RE = re.compile(r"^[A-Za-z0-9 _\-.@]{1,255}$")


def _colon_hex(digest: str) -> str:
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def ssh_fingerprint(public_key: str) -> str:
    parts = public_key.strip().split()
    if len(parts) < 2 or parts[0] not in SSH_TYPES:
        raise BadRequest(
            "Keypair data is invalid: failed to generate fingerprint (the key must be "
            "ssh-rsa, ssh-ed25519 or ecdsa-sha2-*)"
        )
    from cryptography.hazmat.primitives import serialization

    try:
        blob = base64.b64decode(parts[1], validate=True)
        serialization.load_ssh_public_key(f"{parts[0]} {parts[1]}".encode())
    except (binascii.Error, ValueError) as exc:
        raise BadRequest("Keypair data is invalid: failed to generate fingerprint") from exc
    return _colon_hex(hashlib.md5(blob, usedforsecurity=False).hexdigest())


def x509_fingerprint(public_key: str) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_pem_x509_certificate(public_key.encode())
    except ValueError as exc:
        raise BadRequest("Keypair data is invalid: failed to generate fingerprint") from exc
    der = cert.public_bytes(serialization.Encoding.DER)
    return _colon_hex(hashlib.sha1(der, usedforsecurity=False).hexdigest())


def generate_ssh_key(comment: str) -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    return private, f"{public} {comment}"


def keypair_view(record: KeypairRecord, version: APIVersion, *, full: bool) -> dict[str, Any]:
    view: dict[str, Any] = {
        "name": record.name,
        "public_key": record.public_key,
        "fingerprint": record.fingerprint,
    }
    if version.at_least("2.2"):
        view["type"] = record.type
    if full:
        view.update(
            {
                "user_id": record.user_id,
                "id": record.id,
                "created_at": usage_time(record.created_at),
                "deleted": False,
                "deleted_at": None,
                "updated_at": None,
            }
        )
    return view


def _user(request: Request, principal: Principal, version: APIVersion) -> str:
    asked = request.query_params.get("user_id")
    if asked and version.at_least("2.10"):
        if not principal.is_admin and asked != principal.user_id:
            raise NotFound("The keypairs of another user are not visible to you.")
        return asked
    return principal.user_id


async def _keypair(
    request: Request, principal: Principal, state: ComputeState, name: str
) -> tuple[APIVersion, KeypairRecord]:
    """The keypair ``name`` of the user the request names (``_user``), or Nova's 404."""
    version = api_version(request)
    record = await state.keypairs.get(user_id=_user(request, principal, version), name=name)
    if record is None:
        raise NotFound(f"Keypair {name} not found for user {principal.user_id}")
    return version, record


@router.get("/v2.1/os-keypairs")
async def list_keypairs(
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    version = api_version(request)
    records = await state.keypairs.list_for(user_id=_user(request, principal, version))
    return Json({"keypairs": [{"keypair": keypair_view(r, version, full=False)} for r in records]})


@router.get("/v2.1/os-keypairs/{name}")
async def show_keypair(
    name: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    version, record = await _keypair(request, principal, state, name)
    return Json({"keypair": keypair_view(record, version, full=True)})


@router.post("/v2.1/os-keypairs")
async def create_keypair(
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    version = api_version(request)
    data = section(await read_json(request), "keypair")
    name = req_str(data, "name")
    if not NAME_RE.match(name) or name != name.strip():
        raise invalid(
            "name",
            f"{name!r}. Keypair names may only contain letters, digits, spaces, '_', '-', "
            "'.' and '@' (1-255 characters)",
        )
    key_type = data.get("type", "ssh")
    if key_type != "ssh" and not version.at_least("2.2"):
        raise BadRequest("Additional properties are not allowed ('type' was unexpected)")
    if key_type not in ("ssh", "x509"):
        raise invalid("type", f"{key_type!r} is not one of ['ssh', 'x509']")
    user_id = principal.user_id
    if data.get("user_id") and version.at_least("2.10"):
        if not principal.is_admin and data["user_id"] != principal.user_id:
            raise BadRequest("Only an admin can create keypairs for another user.")
        user_id = str(data["user_id"])
    limits = await project_limits(state, principal.project_id or "")
    used = await state.keypairs.count(user_id=user_id)
    if 0 <= limits["key_pairs"] <= used:
        raise over_quota("key_pairs", 1, used, limits["key_pairs"])
    public_key = data.get("public_key")
    private_key = None
    if public_key is None:
        if version.at_least("2.92"):
            raise BadRequest("Invalid input: 'public_key' is a required property")
        if key_type == "x509":
            raise BadRequest("Generating x509 keypairs is not supported; import a certificate.")
        private_key, public_key = generate_ssh_key(f"Generated-by-Nova {name}")
    if not isinstance(public_key, str) or not public_key.strip():
        raise invalid("public_key", f"{public_key!r} must be a non-empty string")
    fingerprint = (
        x509_fingerprint(public_key) if key_type == "x509" else ssh_fingerprint(public_key)
    )
    record = await state.keypairs.create(
        user_id=user_id,
        name=name,
        type=key_type,
        public_key=public_key.strip(),
        fingerprint=fingerprint,
    )
    view = keypair_view(record, version, full=False)
    view["user_id"] = record.user_id
    if private_key is not None:
        view["private_key"] = private_key
    status = 201 if version.at_least("2.2") else 200
    return Json({"keypair": view}, status_code=status)


@router.delete("/v2.1/os-keypairs/{name}")
async def delete_keypair(
    name: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Response:
    version, record = await _keypair(request, principal, state, name)
    await state.keypairs.delete(record)
    return Response(status_code=204 if version.at_least("2.2") else 202)
