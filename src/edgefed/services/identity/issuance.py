"""Issuing a token: parse Keystone's auth request, authenticate, scope, sign.

Methods: ``password`` (user by id, or name + domain id/name), ``token`` (re-scope a
valid token; keeps its expiry and audit chain, as Keystone does) and
``application_credential`` (id, or name + user; the scope is the credential's project
and the roles are limited to the credential's). Scopes: project (id, or name +
domain), domain, system ``{"all": true}``, or none (the user's default project when it
has a role there, otherwise an unscoped token).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgefed.api.auth import Authenticator
from edgefed.core.errors import Unauthorized, ValidationFailed
from edgefed.core.tokens import new_audit_id
from edgefed.services.identity.grants import ScopeGrant, role_graph
from edgefed.services.identity.names import id_by_name
from edgefed.services.identity.passwords import login_throttle, verify_secret
from edgefed.services.identity.scopes import SYSTEM_TARGET, UNSCOPED, grant_for
from edgefed.services.identity.state import IdentityState
from edgefed.store.identity import AppCredentialRecord

AUTH_REQUIRED = "The request you have made requires authentication."
SUPPORTED_METHODS = ("password", "token", "application_credential")


def _object(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationFailed(
            f"Invalid input for field '{field}': {value!r} is not of type 'object'", field=field
        )
    return value


def _string(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationFailed(
            f"Invalid input for field '{field}': {value!r} is not a non-empty string", field=field
        )
    return value


def _required(container: dict[str, Any], key: str, where: str) -> Any:
    if key not in container:
        raise ValidationFailed(
            f"'{key}' is a required property of '{where}'", field=f"{where}.{key}"
        )
    return container[key]


@dataclass(frozen=True, slots=True)
class Authenticated:
    user_id: str
    methods: list[str]
    expires_at: float | None = None
    audit_chain: str | None = None
    app_credential: AppCredentialRecord | None = None


async def _domain_id(state: IdentityState, ref: dict[str, Any], where: str) -> str:
    if "id" in ref:
        return _string(ref["id"], f"{where}.id")
    if "name" in ref:
        name = _string(ref["name"], f"{where}.name")
        found = await id_by_name(state, "domain", name, domain_id=None)
        if found is None:
            raise Unauthorized(f"Could not find domain: {name}.")
        return found
    raise ValidationFailed(f"'{where}' needs an 'id' or a 'name'", field=where)


async def _user_id(state: IdentityState, ref: dict[str, Any], where: str) -> str:
    if "id" in ref:
        return _string(ref["id"], f"{where}.id")
    name = _string(_required(ref, "name", where), f"{where}.name")
    domain = _object(_required(ref, "domain", where), f"{where}.domain")
    domain_id = await _domain_id(state, domain, f"{where}.domain")
    found = await id_by_name(state, "user", name, domain_id=domain_id)
    if found is None:
        raise Unauthorized(AUTH_REQUIRED)
    return found


async def _password(state: IdentityState, body: dict[str, Any]) -> Authenticated:
    user_ref = _object(_required(body, "user", "password"), "password.user")
    password = _required(user_ref, "password", "password.user")
    if not isinstance(password, str):
        raise ValidationFailed("password must be a string", field="password.user.password")
    user_id = await _user_id(state, user_ref, "password.user")
    user = await state.repos.users.get(id=user_id)
    if user is None:
        raise Unauthorized(AUTH_REQUIRED)
    throttle = login_throttle(state.ctx)
    throttle.check_not_locked(user_id)  # a locked account costs no hashing
    if not await throttle.verify(user.password_hash, password):
        throttle.failed(user_id)
        raise Unauthorized(AUTH_REQUIRED)
    throttle.succeeded(user_id)
    return Authenticated(user_id=user_id, methods=["password"])


def _token(
    state: IdentityState, body: dict[str, Any], authenticator: Authenticator
) -> Authenticated:
    token = _string(_required(body, "id", "token"), "token.id")
    claims = authenticator.validate(state.ctx, token).claims
    if claims.get("application_credential"):
        raise Unauthorized("A token created with an application credential cannot be rescoped.")
    methods = ["token"] + [m for m in claims.get("methods", ()) if m != "token"]
    return Authenticated(
        user_id=str(claims["user"]["id"]),
        methods=methods,
        expires_at=float(claims["exp"]),
        audit_chain=str(claims.get("chain") or claims.get("jti")),
    )


async def _app_credential(state: IdentityState, body: dict[str, Any]) -> Authenticated:
    secret = _string(_required(body, "secret", "application_credential"), "secret")
    credentials = state.repos.credentials
    credential: AppCredentialRecord | None
    if "id" in body:
        credential = await credentials.get(id=_string(body["id"], "application_credential.id"))
    else:
        name = _string(_required(body, "name", "application_credential"), "name")
        user_ref = _object(_required(body, "user", "application_credential"), "user")
        user_id = await _user_id(state, user_ref, "application_credential.user")
        found = await credentials.list(filters={"user_id": user_id, "name": name}, limit=1)
        credential = found[0] if found else None
    if credential is None or not await verify_secret(credential.secret_hash, secret):
        raise Unauthorized("Invalid application credential.")
    if credential.expires_at is not None and credential.expires_at <= state.ctx.clock():
        raise Unauthorized("Application credential has expired.")
    return Authenticated(
        user_id=credential.user_id,
        methods=["application_credential"],
        app_credential=credential,
    )


async def authenticate(
    state: IdentityState, identity: dict[str, Any], authenticator: Authenticator
) -> Authenticated:
    methods = _required(identity, "methods", "identity")
    if not isinstance(methods, list) or not methods:
        raise ValidationFailed("'methods' must be a non-empty list", field="identity.methods")
    for method in methods:
        if method not in SUPPORTED_METHODS:
            raise Unauthorized("Attempted to authenticate with an unsupported method.")
    method = methods[0]
    body = _object(_required(identity, method, "identity"), f"identity.{method}")
    if method == "password":
        return await _password(state, body)
    if method == "token":
        return _token(state, body, authenticator)
    return await _app_credential(state, body)


async def requested_target(state: IdentityState, scope: Any, who: Authenticated) -> tuple[str, str]:
    """(target_type, target_id) the request asks for."""
    if who.app_credential is not None:
        if scope is not None:
            raise Unauthorized("Application credentials cannot request a scope.")
        return "project", who.app_credential.project_id
    if scope is None or scope == "unscoped":
        unscoped = await grant_for(state, user_id=who.user_id, target_type=UNSCOPED[0],
                                   target_id=UNSCOPED[1])  # fmt: skip
        default_project = unscoped.user.default_project_id
        if default_project:
            try:
                await grant_for(
                    state, user_id=who.user_id, target_type="project", target_id=default_project
                )
            except Unauthorized:
                return UNSCOPED
            return "project", default_project
        return UNSCOPED
    scope = _object(scope, "scope")
    if "project" in scope:
        ref = _object(scope["project"], "scope.project")
        if "id" in ref:
            return "project", _string(ref["id"], "scope.project.id")
        name = _string(_required(ref, "name", "scope.project"), "scope.project.name")
        domain = _object(_required(ref, "domain", "scope.project"), "scope.project.domain")
        domain_id = await _domain_id(state, domain, "scope.project.domain")
        found = await id_by_name(state, "project", name, domain_id=domain_id)
        if found is None:
            raise Unauthorized(f"Could not find project: {name}.")
        return "project", found
    if "domain" in scope:
        ref = _object(scope["domain"], "scope.domain")
        return "domain", await _domain_id(state, ref, "scope.domain")
    if "system" in scope:
        system = _object(scope["system"], "scope.system")
        if system.get("all") is not True:
            raise ValidationFailed("scope.system must be {'all': true}", field="scope.system")
        return "system", SYSTEM_TARGET
    raise ValidationFailed("scope must name a project, a domain or the system", field="scope")


def _domain_ref_shape(ref: Any, where: str) -> None:
    ref = _object(ref, where)
    if "id" in ref:
        _string(ref["id"], f"{where}.id")
    elif "name" in ref:
        _string(ref["name"], f"{where}.name")
    else:
        raise ValidationFailed(f"'{where}' needs an 'id' or a 'name'", field=where)


def check_scope_shape(scope: Any) -> None:
    """Reject a malformed scope with a 400 before any credential is checked (as Keystone)."""
    if scope is None or scope == "unscoped":
        return
    scope = _object(scope, "scope")
    if "project" in scope:
        ref = _object(scope["project"], "scope.project")
        if "id" in ref:
            _string(ref["id"], "scope.project.id")
            return
        _string(_required(ref, "name", "scope.project"), "scope.project.name")
        _domain_ref_shape(_required(ref, "domain", "scope.project"), "scope.project.domain")
    elif "domain" in scope:
        _domain_ref_shape(scope["domain"], "scope.domain")
    elif "system" in scope:
        system = _object(scope["system"], "scope.system")
        if system.get("all") is not True:
            raise ValidationFailed("scope.system must be {'all': true}", field="scope.system")
    else:
        raise ValidationFailed("scope must name a project, a domain or the system", field="scope")


async def restrict_to_app_credential(
    state: IdentityState, grant: ScopeGrant, credential: AppCredentialRecord
) -> list[dict[str, str]]:
    graph = await role_graph(state)
    allowed = graph.expand(set(credential.role_ids))
    roles = [r for r in grant.roles if r["id"] in allowed]
    if not roles:
        raise Unauthorized("The application credential's roles are no longer assigned to its user.")
    return roles


def build_claims(
    state: IdentityState,
    *,
    who: Authenticated,
    grant: ScopeGrant,
    target_type: str,
    roles: list[dict[str, str]],
) -> dict[str, Any]:
    now = state.ctx.clock()
    expires = now + state.ctx.settings.token_ttl_seconds
    if who.expires_at is not None:
        expires = min(expires, who.expires_at)
    audit = new_audit_id()
    user = grant.user
    claims: dict[str, Any] = {
        "iss": state.ctx.name,
        "iat": now,
        "exp": expires,
        "jti": audit,
        "chain": who.audit_chain or audit,
        "methods": who.methods,
        "user": {
            "id": user.id,
            "name": user.name,
            "domain": {"id": grant.user_domain.id, "name": grant.user_domain.name},
        },
    }
    target = grant.target
    if target_type == "project" and target is not None and grant.target_domain is not None:
        claims["project"] = {
            "id": target.id,
            "name": target.name,
            "domain": {"id": grant.target_domain.id, "name": grant.target_domain.name},
        }
    elif target_type == "domain" and target is not None:
        claims["domain"] = {"id": target.id, "name": target.name}
    elif target_type == "system":
        claims["system"] = {"all": True}
    if target_type != UNSCOPED[0]:
        claims["roles"] = roles
    credential = who.app_credential
    if credential is not None:
        claims["application_credential"] = {
            "id": credential.id,
            "name": credential.name,
            "restricted": not credential.unrestricted,
        }
    return claims
