"""Small shared pieces of the identity routes: lookups that 404 like Keystone, query flags."""

from __future__ import annotations

from edgefed.core.errors import NotFound, ValidationFailed
from edgefed.services.identity.state import IdentityState
from edgefed.store.identity import IdentityTable, Row

FALSE_WORDS = frozenset({"0", "false", "f", "no", "n", "off"})


def query_flag(value: str | None) -> bool | None:
    """Keystone's reading of a boolean query parameter (absent = None)."""
    if value is None:
        return None
    return value.strip().lower() not in FALSE_WORDS


def present_flag(value: str | None) -> bool:
    """``?effective`` and ``?include_names``: present (and not false) means yes."""
    return value is not None and (value == "" or value.strip().lower() not in FALSE_WORDS)


async def must_get(state: IdentityState, table: IdentityTable, row_id: str, what: str) -> Row:
    row = await state.repo.get(table, row_id)
    if row is None:
        raise NotFound(f"Could not find {what}: {row_id}.")
    return row


def refuse_immutable(extras: dict[str, object], *fields: str) -> None:
    """Keystone refuses to move a project, user or group to another domain or parent."""
    for name in fields:
        if name in extras:
            raise ValidationFailed(f"Update of `{name}` is not allowed.", field=name)
