"""A minimal chroot connection for ansible-core (which ships none of its own).

It runs each command as ``chroot ROOT /bin/sh -c CMD`` and copies files into and out
of ``ROOT``; the target is the ``ansible_host`` (the root directory). It needs root.
edgefed uses it to run the edgeworker roles against a Debian root file system in its
tests, and operators can use it to prepare an image before first boot.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

from ansible.errors import AnsibleConnectionFailure, AnsibleFileNotFound
from ansible.plugins.connection import ConnectionBase

DOCUMENTATION = """
    name: edgefed_chroot
    short_description: run tasks inside a chroot directory (edgefed)
    description:
        - Runs commands with chroot(8) inside the directory given as the host.
    author: edgefed
    options:
      remote_addr:
        description: the path of the chroot directory
        default: inventory_hostname
        type: string
        vars:
          - name: inventory_hostname
          - name: ansible_host
"""


class Connection(ConnectionBase):  # type: ignore[misc]
    transport = "edgefed_chroot"
    has_pipelining = True
    has_tty = False
    default_user = "root"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.chroot = ""

    def _connect(self) -> Connection:
        root = str(self.get_option("remote_addr"))
        if not os.path.isdir(root) or not os.path.exists(os.path.join(root, "bin/sh")):
            raise AnsibleConnectionFailure(f"{root} is not a root file system (no bin/sh)")
        self.chroot = root
        self._connected = True
        return self

    def exec_command(
        self, cmd: str, in_data: bytes | None = None, sudoable: bool = False
    ) -> tuple[int, bytes, bytes]:
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        proc = subprocess.run(  # noqa: S603 - the command is the task's, by design
            ["chroot", self.chroot, "/bin/sh", "-c", cmd],  # noqa: S607
            input=in_data,
            capture_output=True,
            check=False,
            env={**os.environ, "LC_ALL": "C.UTF-8"},
        )
        return proc.returncode, proc.stdout, proc.stderr

    def _inside(self, path: str) -> str:
        return os.path.join(self.chroot, path.lstrip("/"))

    def put_file(self, in_path: str, out_path: str) -> None:
        super().put_file(in_path, out_path)
        if not os.path.exists(in_path):
            raise AnsibleFileNotFound(f"file or module does not exist: {in_path}")
        shutil.copyfile(in_path, self._inside(out_path))

    def fetch_file(self, in_path: str, out_path: str) -> None:
        super().fetch_file(in_path, out_path)
        shutil.copyfile(self._inside(in_path), out_path)

    def close(self) -> None:
        self._connected = False
