"""Running the host's tools (qemu-img, ip) from asyncio, every run bounded in time.

One place that turns a missing binary, a non-zero exit or a hang into ``ToolFailed``
with the tool's own words, so callers never see a ``CalledProcessError`` or wait
forever on a stuck ``qemu-img`` (an NFS-backed image, a locked file).
"""

from __future__ import annotations

import asyncio
import contextlib

from edgefed.drivers.qemu.errors import ToolFailed


async def run_tool(*argv: str, timeout: float, stdin: bytes | None = None) -> str:
    """Run ``argv``; its stdout, or ``ToolFailed`` naming the command and its stderr."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError as exc:
        raise ToolFailed(f"{argv[0]} is not installed on this host") from exc
    try:
        out, err = await asyncio.wait_for(process.communicate(stdin), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise ToolFailed(f"{' '.join(argv[:3])} … did not finish within {timeout:g} s") from None
    except asyncio.CancelledError:  # the caller gave up (a spawn whose other step failed)
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        said = err.decode(errors="replace").strip() or f"exit status {process.returncode}"
        raise ToolFailed(f"{argv[0]} {argv[1] if len(argv) > 1 else ''}: {said[-800:]}")
    return out.decode(errors="replace")
