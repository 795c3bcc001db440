"""The real ``openstack`` CLI, run as a subprocess against a site."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def openstack_binary() -> str:
    candidate = Path(sys.executable).with_name("openstack")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("openstack")
    if found is None:
        raise RuntimeError("the openstack CLI (python-openstackclient) is not installed")
    return found


@dataclass
class OpenStackCLI:
    auth_url: str
    username: str = "admin"
    password: str = "admin-secret"
    project: str = "admin"
    region: str | None = None
    timeout: float = 120.0
    extra_env: dict[str, str] | None = None
    interface: str = "public"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env.update(
            OS_AUTH_URL=self.auth_url,
            OS_USERNAME=self.username,
            OS_PASSWORD=self.password,
            OS_PROJECT_NAME=self.project,
            OS_USER_DOMAIN_NAME="Default",
            OS_PROJECT_DOMAIN_NAME="Default",
            OS_IDENTITY_API_VERSION="3",
            OS_INTERFACE=self.interface,
        )
        if self.region:
            env["OS_REGION_NAME"] = self.region
        env.update(self.extra_env or {})
        return env

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [openstack_binary(), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=self.timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"openstack {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stderr}\n{result.stdout}"
            )
        return result

    def json(self, *args: str) -> Any:
        out = self.run(*args, "-f", "json").stdout
        return json.loads(out)

    def as_user(self, username: str, password: str, project: str) -> OpenStackCLI:
        return OpenStackCLI(
            auth_url=self.auth_url,
            username=username,
            password=password,
            project=project,
            region=self.region,
            timeout=self.timeout,
            interface=self.interface,
        )
