"""Files a site writes that nobody else may read, written so that a crash loses none.

Keys, certificates, configuration with secrets, clouds.yaml: 0600 in a 0700 directory,
also when the file existed before with another mode. Written to a temporary file,
fsync'd, renamed over the target, and the directory fsync'd: after a crash the file is
the old one or the new one, never a part.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def fsync_path(path: Path) -> None:
    """fsync the file or directory ``path``: a file's data, a directory's entries (a
    rename into it) made durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


fsync_dir = fsync_path


def write_private(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path``, only its owner may read it, durably and atomically."""
    raw = data.encode() if isinstance(data, str) else data
    path.parent.mkdir(mode=stat.S_IRWXU, parents=True, exist_ok=True)
    os.chmod(path.parent, stat.S_IRWXU)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # also when a stale temporary file had another mode
    with os.fdopen(fd, "wb") as fh:
        fh.write(raw)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
