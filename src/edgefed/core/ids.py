"""Identifiers.

Users, projects, roles and domains get *predictable* IDs (seed 001): the uuid5 of
``domain/name`` under one fixed namespace, in Keystone's 32-hex form, so the same
user has the same ID on every site without any coordination. Everything else gets a
random uuid4 in the form its API uses.
"""

from __future__ import annotations

import uuid

# Fixed forever: changing it would change every predictable ID in every fleet.
EDGEFED_NAMESPACE = uuid.UUID("6f1c0b52-5d0e-5a7c-9a57-0e1d9ed6e4a1")

DEFAULT_DOMAIN_ID = "default"
DEFAULT_DOMAIN_NAME = "Default"


def predictable_id(kind: str, name: str, *, domain_id: str = DEFAULT_DOMAIN_ID) -> str:
    """The ID of a user, project, group or role named ``name`` in ``domain_id``.

    ``kind`` keeps a user and a project of the same name apart.
    """
    return uuid.uuid5(EDGEFED_NAMESPACE, f"{kind}:{domain_id}/{name}").hex


def domain_id_for(name: str) -> str:
    if name.lower() == DEFAULT_DOMAIN_NAME.lower():
        return DEFAULT_DOMAIN_ID
    return uuid.uuid5(EDGEFED_NAMESPACE, f"domain:{name}").hex


def new_hex_id() -> str:
    """Keystone's form: 32 hex digits."""
    return uuid.uuid4().hex


def new_uuid() -> str:
    """Nova, Glance, Neutron and Cinder's form: dashed uuid4."""
    return str(uuid.uuid4())


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return False
    return True
