"""The operator commands read connection defaults from the environment: tests start
from none, whatever the shell running them has set."""

from __future__ import annotations

import pytest

VARIABLES = (
    "EDGEFED_SITE_URL",
    "OS_TOKEN",
    "OS_AUTH_URL",
    "OS_USERNAME",
    "OS_PASSWORD",
    "OS_PROJECT_NAME",
    "EDGEFED_ENROLL_TOKEN",
    "EDGEFED_ADMIN_PASSWORD",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
