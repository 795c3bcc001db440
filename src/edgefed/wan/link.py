"""One link in the running event loop: a shaped TCP proxy listening on 127.0.0.1 (or the
address and port it is given: another loopback address, the port a client expects).

``AsyncWanLink`` owns the listening socket and the controls; what happens to the bytes
of its connections is the engine's (``wan.engine.Shaper``). Its controls must be called
from its event loop; ``wan.control`` drives links from other threads.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from edgefed.wan.engine import Shaper
from edgefed.wan.profile import CutMode, LinkProfile, LinkStats, Target, parse_target


class AsyncWanLink:
    """A shaped TCP proxy on ``listen_host`` (127.0.0.1) in the running event loop."""

    def __init__(
        self,
        target: Target,
        *,
        profile: LinkProfile | None = None,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        name: str = "",
        seed: int | None = None,
    ) -> None:
        self.target = parse_target(target)
        self.name = name or f"link-to-{self.target[1]}"
        self.listen_host = listen_host
        self.listen_port = listen_port
        self._shaper = Shaper(self.target, profile or LinkProfile(), seed=seed)
        self._server: asyncio.Server | None = None

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> AsyncWanLink:
        loop = self._shaper.loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._shaper.accept, self.listen_host, self.listen_port
        )
        self.listen_port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._shaper.close()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> AsyncWanLink:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        return self.listen_port

    @property
    def url(self) -> str:
        """``http://<listen_host>:<port>``: where a client reaches the target through it."""
        return f"http://{self.listen_host}:{self.listen_port}"

    @property
    def stats(self) -> LinkStats:
        return self._shaper.stats

    # --- controls (call them from the link's event loop) ----------------------------------

    @property
    def profile(self) -> LinkProfile:
        return self._shaper.profile

    def set_profile(self, profile: LinkProfile) -> None:
        """Applies to bytes read from now on (bytes in flight keep their due time)."""
        self._shaper.set_profile(profile)

    def update(self, **changes: Any) -> None:
        """``link.update(rtt_ms=80)``: change some knobs of the profile."""
        self.set_profile(dataclasses.replace(self.profile, **changes))

    @property
    def cut_mode(self) -> CutMode | None:
        """None while the link is up."""
        return self._shaper.cut_mode

    def cut(self, *, mode: CutMode = "stall") -> None:
        """``stall``: like a blackholed route; ``reset``: every connection is reset, and
        every new one until healed (a crashed router, a firewall that rejects)."""
        if mode not in ("stall", "reset"):
            raise ValueError(f"cut mode must be 'stall' or 'reset', not {mode!r}")
        assert self._shaper.loop is not None, "start the link first"
        self._shaper.cut(mode)

    def heal(self) -> None:
        """The surviving connections resume with no byte lost or reordered, and the
        connections accepted meanwhile reach the target."""
        assert self._shaper.loop is not None, "start the link first"
        self._shaper.heal()
