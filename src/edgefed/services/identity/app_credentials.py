"""/v3/users/{user_id}/application_credentials: a user's own delegated credentials.

Created from a project-scoped token, for oneself only, bound to that project; the roles
are the token's (or a subset the caller names: any other role is refused). The secret
is shown once, in the create response, and stored as an argon2id hash. A token issued
with the credential carries only its roles, and only while the user still holds them.
Deleting a credential revokes its tokens, here and at every fleet site.

Access rules (Keystone's per-credential allow list of service, path and method) are
refused at creation with a 400 naming the field: this site does not enforce them on the
requests made with the credential's tokens, and a credential that looks restricted but
is not would be worse than none (docs/identity.md).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

from edgefed.api.resource import Call
from edgefed.core.errors import Forbidden, ValidationFailed
from edgefed.core.ids import new_hex_id
from edgefed.services.identity.grants import role_graph
from edgefed.services.identity.keystone import KeystonePolicy, KeystoneResource, itself
from edgefed.services.identity.passwords import hash_secret, new_app_credential_secret
from edgefed.services.identity.revoking import revoke
from edgefed.services.identity.schemas import AppCredentialCreate, AppCredentialCreateBody
from edgefed.services.identity.state import state_for
from edgefed.services.identity.users import USER
from edgefed.store.identity import AppCredentialRecord, AppCredentials
from edgefed.store.revocations import RevocationEvent

ACCESS_RULES_REFUSED = (
    "Invalid input for field 'access_rules': application credential access rules are "
    "not supported on this site (they would not be enforced); create the credential "
    "without them, with only the roles it needs"
)


@dataclasses.dataclass(frozen=True, slots=True)
class CreatedCredential(AppCredentialRecord):
    """A credential as created: with its secret, shown this once."""

    secret: str = ""


def _parse_expiry(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        when = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValidationFailed(
            f"Invalid input for field 'expires_at': {raw!r} is not an ISO 8601 time",
            field="expires_at",
        ) from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def _expiry(expires: float | None) -> str | None:
    if expires is None:
        return None
    return (
        dt.datetime.fromtimestamp(expires, dt.UTC)
        .replace(tzinfo=None)
        .isoformat(timespec="microseconds")
    )


class CredentialPolicy(KeystonePolicy):
    """A user manages its own credentials (an admin reads and deletes anyone's); it
    creates them for itself only, with a project-scoped token that no restricted
    credential issued."""

    def may_read(self, call: Call, credential: AppCredentialRecord) -> bool:
        return bool(credential.user_id == call.parent.id)

    def admit(self, call: Call, verb: str, id: str | None) -> None:
        if verb != "create":
            return super().admit(call, verb, call.path("user_id"))
        principal = call.principal
        if principal.user_id != call.path("user_id"):
            raise Forbidden(
                "You are not authorized to perform the requested action: "
                "identity:create_application_credential (only for yourself)."
            )
        if principal.claims.get("application_credential", {}).get("restricted"):
            raise Forbidden("A restricted application credential cannot create another one.")
        if principal.project_id is None:
            raise Forbidden("Creating an application credential needs a project-scoped token.")


def _role_ids(call: Call, c: AppCredentialCreate) -> list[str]:
    """The roles asked for (none named, as the CLI sends []: all of the token's),
    each of which the token must hold."""
    token_roles = {r["id"]: r["name"] for r in call.principal.claims.get("roles", [])}
    if not c.roles:
        return list(token_roles)
    by_name = {name: rid for rid, name in token_roles.items()}
    role_ids = []
    for ref in c.roles:
        rid = ref.id or (by_name.get(ref.name) if ref.name else None)
        if rid is None or rid not in token_roles:
            raise Forbidden(
                f"Role {ref.id or ref.name} is not assigned to the user on this project."
            )
        role_ids.append(rid)
    return role_ids


class AppCredential(KeystoneResource[AppCredentialRecord, AppCredentials]):
    key = "application_credential"
    collection_key = "application_credentials"
    path = "/v3/users/{user_id}/application_credentials"
    parent = USER
    verbs = frozenset({"list", "show", "create", "delete"})
    attributes = ("id", "name", "description", "user_id", "project_id", "unrestricted")
    access = CredentialPolicy(own=dict.fromkeys(("list", "show", "delete"), itself))
    not_found_message = "Could not find application credential: {id}."
    query_doc = {"name": "Only the credential of this name."}
    create_body = AppCredentialCreateBody

    store_class = AppCredentials

    def links(self, call: Call, credential: AppCredentialRecord) -> dict[str, str]:
        path = f"/users/{credential.user_id}/application_credentials/{credential.id}"
        return {"self": self.url(call, path)}

    def view(self, credential: AppCredentialRecord, call: Call) -> dict[str, Any]:
        graph = state_for(call.ctx).role_graph
        names: dict[str, str] = graph.names if graph is not None else {}
        view = {
            **self.copy(credential),
            "roles": [
                {"id": rid, "name": names.get(rid, ""), "domain_id": None}
                for rid in credential.role_ids
            ],
            "expires_at": _expiry(credential.expires_at),
            "access_rules": list(credential.access_rules),
            "links": self.links(call, credential),
        }
        if isinstance(credential, CreatedCredential):
            view["secret"] = credential.secret
        return view

    async def records(self, call: Call, repo: AppCredentials) -> Sequence[AppCredentialRecord]:
        await role_graph(state_for(call.ctx))  # the roles' names, for the views
        name = call.query.get("name")
        filters = {"user_id": call.parent.id, **({"name": name} if name is not None else {})}
        return await repo.list(filters=filters)

    async def find(
        self, call: Call, id: str, repo: AppCredentials | None = None
    ) -> AppCredentialRecord:
        await role_graph(state_for(call.ctx))  # the roles' names, for the view
        return await super().find(call, id, repo)

    async def create(self, call: Call, repo: AppCredentials) -> AppCredentialRecord:
        c = call.model(AppCredentialCreateBody).application_credential
        if c.access_rules:
            raise ValidationFailed(ACCESS_RULES_REFUSED, field="access_rules")
        role_ids = _role_ids(call, c)
        expires_at = _parse_expiry(c.expires_at)
        if expires_at is not None and expires_at <= call.ctx.clock():
            raise ValidationFailed("expires_at must be in the future", field="expires_at")
        secret = c.secret or new_app_credential_secret()
        stored = await repo.create(
            new=AppCredentialRecord(
                id=new_hex_id(),
                name=c.name,
                user_id=call.parent.id,
                project_id=str(call.principal.project_id),
                secret_hash=await hash_secret(secret),
                description=c.description or "",
                role_ids=tuple(sorted(set(role_ids))),
                unrestricted=c.unrestricted,
                expires_at=expires_at,
            )
        )
        await role_graph(state_for(call.ctx))  # the roles' names, for the view
        return CreatedCredential(**dataclasses.asdict(stored), secret=secret)

    async def after_write(
        self,
        call: Call,
        verb: str,
        before: AppCredentialRecord | None,
        after: AppCredentialRecord | None,
    ) -> None:
        if verb == "delete" and before is not None:
            # Keystone: the credential's tokens die with it, here and at every fleet site.
            event = RevocationEvent(issued_before=call.ctx.clock(), app_cred_id=before.id)
            await revoke(state_for(call.ctx), event)


APP_CREDENTIAL = AppCredential()
