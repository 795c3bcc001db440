"""Debian packages as the guest image's only source: resolve, download, read members.

The guest is built from packages of the host's own Debian release (the kernel of
``linux-image-cloud-amd64``, ``busybox-static``), fetched with ``apt-get download`` from
the mirror the host already uses: no other download, and no root-only step but apt's.
A package's deb is kept in the cache under its exact name and version, so a rebuild
fetches nothing.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path


class BuildError(Exception):
    """The guest image cannot be built here; the message says what is missing."""


def run(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, stdin: str | None = None
) -> str:
    """Run a build tool; its stdout, or ``BuildError`` with its stderr."""
    try:
        done = subprocess.run(  # noqa: S603 - our own tools and arguments
            args,
            check=True,
            text=True,
            capture_output=True,
            cwd=cwd,
            env=env,
            input=stdin,
            timeout=600,
        )
    except FileNotFoundError as exc:
        raise BuildError(f"{args[0]} is not installed (make system-deps installs it)") from exc
    except subprocess.CalledProcessError as exc:
        raise BuildError(f"{' '.join(args)} failed: {exc.stderr.strip()[-500:]}") from exc
    return done.stdout


def _candidate_or_none(package: str) -> str | None:
    for line in run("apt-cache", "policy", package).splitlines():
        line = line.strip()
        if line.startswith("Candidate:"):
            version = line.split()[1]
            return None if version == "(none)" else version
    return None


_updated = False


def _update_lists_once() -> None:
    """A machine whose package lists were never fetched (or were cleaned) knows no
    candidate: fetch them once, as ``make system-deps`` would."""
    global _updated
    if _updated or os.geteuid() != 0:
        return
    _updated = True
    run("apt-get", "update", "-q")


def candidate(package: str) -> str:
    """The version ``apt-get install`` would pick."""
    version = _candidate_or_none(package)
    if version is None:
        _update_lists_once()
        version = _candidate_or_none(package)
    if version is None:
        raise BuildError(f"no installable version of {package} (apt-get update, then retry)")
    return version


def dependency_named(meta_package: str, prefix: str) -> str:
    """The package a meta-package stands for (``linux-image-cloud-amd64`` → the versioned
    kernel package)."""
    candidate(meta_package)
    for line in run("apt-cache", "depends", meta_package).splitlines():
        line = line.strip()
        if line.startswith(f"Depends: {prefix}"):
            return line.split()[1]
    raise BuildError(f"{meta_package} depends on no {prefix}* package")


def fetch(package: str, version: str, cache: Path) -> Path:
    """The package's deb in ``cache``, downloaded once."""
    cache.mkdir(parents=True, exist_ok=True)
    name = f"{package}_{version.replace(':', '%3a')}_amd64.deb"
    path = cache / name
    if not path.exists():
        # apt-get download writes into its working directory (the cache)
        run("apt-get", "download", "-q", f"{package}={version}", cwd=cache)
    if not path.exists():
        raise BuildError(f"apt-get download {package}={version} gave no {name}")
    return path


def members(deb: Path, wanted: Callable[[str], bool]) -> dict[str, bytes]:
    """The regular files of a deb's data archive whose path ``wanted`` accepts."""
    data = subprocess.run(  # noqa: S603 - our own tool and arguments
        ["dpkg-deb", "--fsys-tarfile", str(deb)],  # noqa: S607 - found on PATH, as apt's are
        check=True,
        capture_output=True,
        timeout=600,
    ).stdout
    found: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        for member in archive:
            if member.isfile() and wanted(member.name):
                extracted = archive.extractfile(member)
                if extracted is not None:
                    found[member.name] = extracted.read()
    return found
