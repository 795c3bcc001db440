"""The all-in-one site's own host: what its agent needs before it starts.

With the qemu driver and ``local_agent`` (the default), ``edgefed site serve`` runs a
host agent for the machine it is on. The site gets that host ready at start: it adds
it (``<site>-local``, a worker) unlocked, so the scheduler takes it as soon as its
agent reports its hardware, and, while the host has no enrolled agent, writes a
one-time enrollment token for it to ``<data_dir>/agent/enroll-token`` (0600), which
the CLI hands to the agent it starts. An agent enrolled before keeps its credential.
"""

from __future__ import annotations

import logging
from pathlib import Path

from edgefed.api.context import SiteContext
from edgefed.core.files import write_private
from edgefed.services.inventory.operations import HostInventory
from edgefed.services.inventory.views import HostCreate, TokenCreate

log = logging.getLogger("edgefed.inventory")

TOKEN_FILE = "enroll-token"  # noqa: S105 - a file name


def agent_dir(data_dir: Path) -> Path:
    return data_dir / "agent"


async def prepare(ctx: SiteContext) -> None:
    inventory = HostInventory(ctx)
    hostname = ctx.settings.local_agent_host
    host = await inventory.hosts.by_hostname(hostname)
    if host is None:
        host = await inventory.add(HostCreate(hostname=hostname, personality="worker"))
        log.info("added this machine as host %s for the local agent", hostname)
    if host.locked:
        host = await inventory.unlock(host)
    token_file = agent_dir(ctx.settings.data_dir) / TOKEN_FILE
    if host.credential_hash is not None:
        token_file.unlink(missing_ok=True)
        return
    _, secret = await inventory.create_token(TokenCreate(hostname=hostname, ttl_seconds=3600))
    token_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private(token_file, secret + "\n")
