"""An NBD client for tests: ``qemu-io`` against a volume export over TLS-PSK."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def qemu_io(
    data: Mapping[str, Any], tmp: Path, *commands: str, key: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``commands`` (qemu-io's, e.g. ``"write -P 0x5a 0 64k"``) against the export
    that ``data`` describes (host, port, export, tls_psk_identity, tls_psk_key), as an
    NBD client holding the PSK ``key`` (default: the export's own); its key file goes
    to ``tmp/client``."""
    keys = tmp / "client"
    keys.mkdir(exist_ok=True)
    (keys / "keys.psk").write_text(f"{data['tls_psk_identity']}:{key or data['tls_psk_key']}\n")
    (keys / "keys.psk").chmod(0o600)
    argv = ["qemu-io", "--object",
            f"tls-creds-psk,id=tls0,endpoint=client,dir={keys},"
            f"username={data['tls_psk_identity']}",
            "--image-opts",
            f"driver=nbd,host={data['host']},port={data['port']},export={data['export']},"
            "tls-creds=tls0"]  # fmt: skip
    for command in commands:
        argv += ["-c", command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
