"""One viewer's WebRTC session: its peer connection and its hub subscriptions."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from aiortc import RTCPeerConnection

from relay.media.hub import Subscription


@dataclass(eq=False)
class WhepSession:
    id: str
    camera_id: str
    stream: str
    peer: str
    user: str
    credential: str  # the session or token hash the viewer came with
    pc: RTCPeerConnection
    subscriptions: list[Subscription] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    rank: int = 0  # the viewer's role's rank (User.rank)
    connected: bool = False  # ICE connected once; until then it is pending
    _closed: asyncio.Future[None] | None = None

    async def close(self) -> None:
        """Idempotent; concurrent callers wait for the same close."""
        if self._closed is None:
            self._closed = asyncio.get_running_loop().create_future()
            try:
                for sub in self.subscriptions:
                    sub.close()
                await self.pc.close()
            finally:
                self._closed.set_result(None)
        await asyncio.shield(self._closed)
