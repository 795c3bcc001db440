"""Rendering rows into Keystone's JSON: entity links and collection envelopes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from edgefed.services.identity.state import IdentityState


def api_url(state: IdentityState, path: str) -> str:
    return f"{state.ctx.public_url}/identity/v3{path}"


def links(state: IdentityState, path: str) -> dict[str, str]:
    return {"self": api_url(state, path)}


def collection(
    state: IdentityState, key: str, items: Iterable[dict[str, Any]], *, path: str
) -> dict[str, Any]:
    return {
        key: list(items),
        "links": {"self": api_url(state, path), "previous": None, "next": None},
    }


def isotime(seconds: float) -> str:
    """Keystone's token time format: ``2015-11-05T22:00:11.000000Z``."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def domain_view(state: IdentityState, row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row["extra"],
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "enabled": row["enabled"],
        "tags": row["tags"],
        "options": {},
        "links": links(state, f"/domains/{row['id']}"),
    }


def project_view(state: IdentityState, row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row["extra"],
        "id": row["id"],
        "name": row["name"],
        "domain_id": row["domain_id"],
        "description": row["description"],
        "enabled": row["enabled"],
        "parent_id": row["parent_id"] or row["domain_id"],
        "is_domain": False,
        "tags": row["tags"],
        "options": {},
        "links": links(state, f"/projects/{row['id']}"),
    }


def user_view(state: IdentityState, row: dict[str, Any]) -> dict[str, Any]:
    view = {
        **row["extra"],
        "id": row["id"],
        "name": row["name"],
        "domain_id": row["domain_id"],
        "enabled": row["enabled"],
        "password_expires_at": None,
        "options": {},
        "links": links(state, f"/users/{row['id']}"),
    }
    if row["default_project_id"]:
        view["default_project_id"] = row["default_project_id"]
    return view


def group_view(state: IdentityState, row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row["extra"],
        "id": row["id"],
        "name": row["name"],
        "domain_id": row["domain_id"],
        "description": row["description"],
        "links": links(state, f"/groups/{row['id']}"),
    }


def role_view(state: IdentityState, row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row["extra"],
        "id": row["id"],
        "name": row["name"],
        "domain_id": row["domain_id"],
        "description": row["description"],
        "options": {},
        "links": links(state, f"/roles/{row['id']}"),
    }


def role_ref(state: IdentityState, role_id: str, name: str) -> dict[str, Any]:
    return {"id": role_id, "name": name, "links": links(state, f"/roles/{role_id}")}
