"""The fan-out hub: one Channel per camera stream, shared by every consumer.

A Channel owns its CameraSource and a GOP cache (everything since the last
keyframe), so a new subscriber starts at once with a decodable picture instead of
waiting for the camera's next keyframe. Each Subscription has a bounded queue: a
consumer that falls behind loses packets up to the next keyframe, counted, and
never slows the camera or anyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from ingest import CameraSource, MediaPacket, SourceState
from relay.config import CameraConfig, Config

logger = logging.getLogger(__name__)

StreamName = Literal["main", "sub"]


@dataclass(frozen=True)
class HubSettings:
    gop_max_bytes: int = 16 * 1024 * 1024
    gop_max_seconds: float = 12.0
    queue_packets: int = 400  # a 4 s GOP at 25 fps with audio fits twice


class SubscriptionClosed(Exception):
    pass


class Subscription:
    """A consumer's bounded view of a channel; `await get()` the next packet."""

    def __init__(self, channel: Channel, limit: int) -> None:
        self.channel = channel
        self.limit = limit
        self.dropped = 0
        self.delivered = 0
        self._queue: deque[MediaPacket] = deque()
        self._need_keyframe = False
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    def put(self, packet: MediaPacket) -> None:
        if self._need_keyframe:
            if not (packet.kind == "video" and packet.keyframe):
                self.dropped += 1
                return
            self._need_keyframe = False
        elif len(self._queue) >= self.limit:
            # Behind by a whole queue: skip to the next keyframe, never a broken GOP.
            self.dropped += len(self._queue) + 1
            self._queue.clear()
            self._need_keyframe = True
            return
        self._queue.append(packet)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self) -> MediaPacket:
        while not self._queue:
            if self._closed:
                raise SubscriptionClosed
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        self.delivered += 1
        return self._queue.popleft()

    def pending(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.clear()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        self.channel.unsubscribe(self)


class Channel:
    """One stream of one camera: its source, GOP cache and subscribers."""

    def __init__(
        self,
        camera: CameraConfig,
        stream: StreamName,
        url: str,
        settings: HubSettings,
        on_state: Callable[[Channel], None] | None = None,
    ) -> None:
        self.camera = camera
        self.stream: StreamName = stream
        self.settings = settings
        self.source = CameraSource(
            f"{camera.id}/{stream}",
            url,
            label=camera.name,
            settings=camera.source_settings(),
            on_packet=self.publish,
            on_state=lambda _source: on_state(self) if on_state else None,
        )
        self.subscribers: set[Subscription] = set()
        self._gop: list[MediaPacket] = []
        self._gop_bytes = 0
        self._idle_close: asyncio.TimerHandle | None = None
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def always_on(self) -> bool:
        return self.camera.always_on

    def start(self) -> None:
        if self.always_on:
            self.source.start()

    def publish(self, packet: MediaPacket) -> None:
        self._cache(packet)
        for sub in self.subscribers:
            sub.put(packet)

    def _cache(self, packet: MediaPacket) -> None:
        if packet.kind == "video" and packet.keyframe:
            self._gop.clear()
            self._gop_bytes = 0
        elif not self._gop:
            return  # no keyframe yet: nothing decodable to cache
        self._gop.append(packet)
        self._gop_bytes += len(packet.data)
        age = packet.received - self._gop[0].received
        if self._gop_bytes > self.settings.gop_max_bytes or age > self.settings.gop_max_seconds:
            self._gop.clear()
            self._gop_bytes = 0

    def gop(self) -> list[MediaPacket]:
        return list(self._gop)

    def subscribe(self, limit: int | None = None) -> Subscription:
        sub = Subscription(self, max(limit or self.settings.queue_packets, len(self._gop) + 1))
        for packet in self._gop:
            sub.put(packet)
        self.subscribers.add(sub)
        if self._idle_close is not None:
            self._idle_close.cancel()
            self._idle_close = None
        self.source.start()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self.subscribers.discard(sub)
        if not self.subscribers and not self.always_on and self.source.running:
            loop = asyncio.get_running_loop()
            self._idle_close = loop.call_later(self.camera.idle_timeout, self._close_idle)

    def _close_idle(self) -> None:
        self._idle_close = None
        if not self.subscribers:
            logger.info(
                "camera %s: no viewer for %.0f s, closing", self.source.id, self.camera.idle_timeout
            )
            self._gop.clear()
            self._gop_bytes = 0
            task = asyncio.create_task(self.source.stop())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        if self._idle_close is not None:
            self._idle_close.cancel()
        for sub in list(self.subscribers):
            sub.close()
        await self.source.stop()
        for task in list(self._closing):
            with contextlib.suppress(asyncio.CancelledError):
                await task


class Hub:
    """Every channel of the node, built from the config."""

    def __init__(self, config: Config, settings: HubSettings | None = None) -> None:
        self.config = config
        self.settings = settings or HubSettings()
        self.channels: dict[tuple[str, StreamName], Channel] = {}
        self.state_listeners: list[Callable[[Channel], None]] = []
        for cam in config.cameras:
            self.channels[(cam.id, "main")] = Channel(
                cam, "main", cam.main, self.settings, self._state_changed
            )
            if cam.sub:
                self.channels[(cam.id, "sub")] = Channel(
                    cam, "sub", cam.sub, self.settings, self._state_changed
                )

    def _state_changed(self, channel: Channel) -> None:
        for listener in self.state_listeners:
            listener(channel)

    def start(self) -> None:
        for channel in self.channels.values():
            channel.start()

    async def close(self) -> None:
        async with asyncio.TaskGroup() as group:
            for channel in self.channels.values():
                group.create_task(channel.close())

    def channel(self, camera_id: str, stream: StreamName = "main") -> Channel | None:
        return self.channels.get((camera_id, stream))

    def camera_channels(self, camera_id: str) -> Iterator[Channel]:
        for stream in ("main", "sub"):
            channel = self.channels.get((camera_id, stream))
            if channel is not None:
                yield channel

    def camera_state(self, camera_id: str) -> SourceState:
        """Online if any stream is; otherwise the main stream's state."""
        states = [c.source.state for c in self.camera_channels(camera_id)]
        if SourceState.ONLINE in states:
            return SourceState.ONLINE
        return states[0] if states else SourceState.OFFLINE
