"""Runs a bundle's playbook with ansible-core (``ansible-playbook`` from this Python's
environment), and reads the play recap so callers can tell what changed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edgefed.core.errors import BadRequest
from edgefed.provisioning.bundle import INVENTORY, PLAYBOOK

_RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)")


@dataclass(frozen=True, slots=True)
class PlayResult:
    returncode: int
    output: str
    # hostname -> (ok, changed, unreachable, failed)
    recap: dict[str, tuple[int, int, int, int]]

    @property
    def changed(self) -> int:
        return sum(v[1] for v in self.recap.values())


def ansible_tool(name: str) -> str:
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise BadRequest(f"{name} is not installed (pip install ansible-core)")
    return found


def run_playbook(
    bundle: Path,
    *,
    tags: Sequence[str] = (),
    extra_args: Sequence[str] = (),
    syntax_check: bool = False,
    timeout: float = 1800.0,
) -> PlayResult:
    args = [ansible_tool("ansible-playbook"), "-i", INVENTORY, PLAYBOOK]
    if syntax_check:
        args.append("--syntax-check")
    if tags:
        args += ["--tags", ",".join(tags)]
    args += list(extra_args)
    env = dict(os.environ, ANSIBLE_CONFIG=str(bundle / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    env["ANSIBLE_FORCE_COLOR"] = "0"
    proc = subprocess.run(  # noqa: S603 - our own tool and arguments
        args, cwd=bundle, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = proc.stdout + proc.stderr
    recap = {
        m.group(1): (int(m.group(2)), int(m.group(3)), int(m.group(4)), int(m.group(5)))
        for m in (_RECAP.match(line) for line in output.splitlines())
        if m
    }
    return PlayResult(returncode=proc.returncode, output=output, recap=recap)
