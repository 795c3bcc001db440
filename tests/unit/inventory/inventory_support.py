"""What the inventory tests share besides fixtures: a hand-moved clock and admin tokens
signed by the site's own key (imported by name: a ``conftest`` import would pick whichever
conftest module the worker loaded first)."""

from __future__ import annotations

import time
from typing import Any

from edgefed.core.tokens import new_audit_id
from edgefed.testkit.inprocess import InProcessSite


class FakeClock:
    """The site clock, moved by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def signed_token(site: InProcessSite, *, roles: tuple[str, ...] = ("admin",)) -> str:
    ctx = site.app.state.ctx
    now = ctx.clock()
    claims: dict[str, Any] = {
        "iss": ctx.name,
        "iat": now,
        "exp": now + 3600,
        "jti": new_audit_id(),
        "chain": new_audit_id(),
        "methods": ["password"],
        "user": {"id": "u-test", "name": "tester", "domain": {"id": "default", "name": "Default"}},
        "project": {
            "id": "p-test",
            "name": "admin",
            "domain": {"id": "default", "name": "Default"},
        },
        "roles": [{"id": f"r-{r}", "name": r} for r in roles],
    }
    return str(ctx.signer.sign(claims))
