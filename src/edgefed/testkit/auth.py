"""Keystone password-authentication bodies, for the test kit's clients."""

from __future__ import annotations

from typing import Any


def password_auth(user: str, password: str, project: str | None = "admin") -> dict[str, Any]:
    """The body of ``POST /identity/v3/auth/tokens`` for a Default-domain user."""
    auth: dict[str, Any] = {
        "identity": {
            "methods": ["password"],
            "password": {"user": {"name": user, "domain": {"id": "default"}, "password": password}},
        }
    }
    if project is not None:
        auth["scope"] = {"project": {"name": project, "domain": {"id": "default"}}}
    return {"auth": auth}
