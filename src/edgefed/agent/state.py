"""What the agent keeps between runs: the site it enrolled with and its host credential.

The file is written atomically with mode 0600; the credential is a secret.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

STATE_FILE = "agent.json"


@dataclass(frozen=True, slots=True)
class AgentState:
    site_url: str
    host_id: str
    hostname: str
    credential: str


def load(state_dir: Path) -> AgentState | None:
    path = state_dir / STATE_FILE
    try:
        raw = json.loads(path.read_text())
        return AgentState(**raw)
    except (OSError, ValueError, TypeError):
        return None


def save(state_dir: Path, state: AgentState) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(state_dir, 0o700)
    tmp = state_dir / (STATE_FILE + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(asdict(state), fh)
    os.replace(tmp, state_dir / STATE_FILE)
