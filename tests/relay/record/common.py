"""What the recording tests share."""

from __future__ import annotations

import asyncio
import time

from relay.record.index import Segment
from relay.record.service import Recordings


async def closed_segments(service: Recordings, camera: str, count: int) -> list[Segment]:
    """Once `count` files of the camera are finished (the recorder tells the index)."""
    async with asyncio.timeout(40):
        while True:
            found = [s for s in await service.segments(camera, 0, time.time() + 60) if not s.open]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.2)
