"""Running ``ip``, ``nft``, ``sysctl`` and friends from asyncio, always within a time bound.

Every host command of the library goes through ``run``: a missing binary, a non-zero
exit or a command that hangs (a wedged netlink socket, a stuck ``nft``) becomes a
``HostNetError`` naming the step and quoting the tool, never a ``CalledProcessError``
or a wait without end. ``in_netns`` prefixes a command to run inside a namespace
(``ip netns exec``), which is how ``nft``, ``sysctl`` and ``dnsmasq`` see the site's
own network stack.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from edgefed.drivers.hostnet.errors import HostNetError

# What the library waits for a host command, unless told otherwise (seconds).
DEFAULT_TIMEOUT = 10.0
# How much of a tool's stderr an error quotes.
_QUOTED = 600


def in_netns(netns: str | None, argv: Sequence[str]) -> list[str]:
    """``argv`` run inside ``netns`` (as is when None)."""
    return ["ip", "netns", "exec", netns, *argv] if netns else list(argv)


async def run(
    argv: Sequence[str],
    *,
    step: str,
    timeout: float = DEFAULT_TIMEOUT,
    stdin: str | None = None,
) -> str:
    """Run ``argv``; its stdout, or ``HostNetError(step, …)`` quoting its stderr."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError as exc:
        raise HostNetError(step, f"{argv[0]} is not installed on this host") from exc
    except OSError as exc:
        raise HostNetError(step, f"cannot run {argv[0]}: {exc}") from exc
    try:
        out, err = await asyncio.wait_for(
            process.communicate(stdin.encode() if stdin is not None else None), timeout
        )
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise HostNetError(step, f"{argv[0]} did not finish within {timeout:g} s") from None
    if process.returncode != 0:
        said = err.decode(errors="replace").strip() or f"exit status {process.returncode}"
        raise HostNetError(step, said[-_QUOTED:])
    return out.decode(errors="replace")
