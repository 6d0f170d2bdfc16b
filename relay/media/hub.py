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
from typing import TYPE_CHECKING, Literal

from ingest.packet import MediaKind, MediaPacket
from ingest.source import CameraSource
from ingest.state import SourceState
from relay.config import CameraConfig, Config
from relay.media.changes import CameraChanges, camera_changes

if TYPE_CHECKING:
    from relay.media.pictures import PictureSource

logger = logging.getLogger(__name__)

StreamName = Literal["main", "sub"]
BOTH: frozenset[MediaKind] = frozenset(("video", "audio"))


@dataclass(frozen=True)
class HubSettings:
    gop_max_bytes: int = 16 * 1024 * 1024
    gop_max_seconds: float = 12.0
    queue_packets: int = 400  # a 4 s GOP at 25 fps with audio fits twice


class SubscriptionClosed(Exception):
    pass


class Subscription:
    """A consumer's bounded view of a channel; `await get()` the next packet."""

    def __init__(self, fanout: FanOut, kinds: frozenset[MediaKind], limit: int) -> None:
        self.fanout = fanout
        self.kinds = kinds
        self.limit = limit
        self.backlog: list[MediaPacket] = []  # the part of the GOP cache it started with
        self.dropped = 0
        self.delivered = 0
        self.delivered_directly = 0
        # Handed a packet as it is published, while the consumer waits in get() with
        # nothing queued; True if it took it (else it is queued as usual). It saves
        # a task switch per packet and consumer (a WebRTC viewer's writer).
        self.direct: Callable[[MediaPacket], bool] | None = None
        # Parked: its consumer is handed the packets another way (a tap of the
        # fan-out, FanOut.taps), and its queue is given none while it is.
        self.parked = False
        self._queue: deque[MediaPacket] = deque()
        self._need_keyframe = False
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    def take_backlog(self) -> list[MediaPacket]:
        """The cached packets it started with (they are in its queue too), handed
        over once, so that they are kept only as long as their taker needs them."""
        backlog, self.backlog = self.backlog, []
        return backlog

    def put(self, packet: MediaPacket) -> None:
        if self._need_keyframe:
            if not (packet.kind == "video" and packet.keyframe):
                self.dropped += 1
                self.fanout.dropped += 1
                return
            self._need_keyframe = False
        elif len(self._queue) >= self.limit:
            # Behind by a whole queue: skip to the next keyframe, never a broken GOP.
            # (Audio alone has no keyframes: it simply starts again from now.)
            lost = len(self._queue) + ("video" in self.kinds)
            self.dropped += lost
            self.fanout.dropped += lost  # outlives the subscription, for the metrics
            self._queue.clear()
            self._need_keyframe = "video" in self.kinds
            if self._need_keyframe:
                return
        waiter = self._waiter
        if (
            self.direct is not None
            and waiter is not None
            and not waiter.done()
            and not self._queue
            and self.direct(packet)
        ):
            self.delivered += 1
            self.delivered_directly += 1
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

    def park(self, parked: bool = True) -> None:
        """Stops (or starts again) giving its queue packets: its consumer takes them
        from a tap of the fan-out meanwhile."""
        self.parked = parked
        self.fanout.parked_changed()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.clear()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        self.fanout.unsubscribe(self)


class FanOut:
    """A GOP cache and the subscribers of one stream of packets."""

    def __init__(self, name: str, settings: HubSettings) -> None:
        self.name = name
        self.settings = settings
        self.subscribers: set[Subscription] = set()
        self._delivering: list[Subscription] = []  # those not parked
        # Called with every packet published, after the subscribers: a consumer that
        # serves many parked subscriptions at once (a WebRTC ViewerGroup).
        self.taps: dict[object, Callable[[MediaPacket], None]] = {}
        self.dropped = 0  # packets its slow subscribers lost, all of them ever
        self._gop: list[MediaPacket] = []
        self._gop_bytes = 0

    def publish(self, packet: MediaPacket) -> None:
        self._cache(packet)
        for sub in self._delivering:
            if packet.kind in sub.kinds:
                sub.put(packet)
        if self.taps:
            for tap in list(self.taps.values()):
                tap(packet)

    def parked_changed(self) -> None:
        """A new list, not changed in place: publish may be going through the old."""
        self._delivering = [sub for sub in self.subscribers if not sub.parked]

    def _cache(self, packet: MediaPacket) -> None:
        if packet.kind == "video" and packet.keyframe:
            self.clear_cache()
        elif not self._gop:
            return  # no keyframe yet: nothing decodable to cache
        self._gop.append(packet)
        self._gop_bytes += len(packet.data)
        age = packet.received - self._gop[0].received
        if self._gop_bytes > self.settings.gop_max_bytes or age > self.settings.gop_max_seconds:
            self.clear_cache()

    def clear_cache(self) -> None:
        self._gop = []
        self._gop_bytes = 0

    def gop(self) -> list[MediaPacket]:
        return list(self._gop)

    def subscribe(
        self, kinds: frozenset[MediaKind] = BOTH, limit: int | None = None
    ) -> Subscription:
        """A new subscriber; video ones start with the cached GOP."""
        backlog = [p for p in self._gop if p.kind in kinds] if "video" in kinds else []
        sub = Subscription(self, kinds, max(limit or self.settings.queue_packets, len(backlog) + 1))
        for packet in backlog:
            sub.put(packet)
        sub.backlog = backlog
        self.subscribers.add(sub)
        self.parked_changed()
        self.first_joined()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self.subscribers.discard(sub)
        self.parked_changed()
        if not self.subscribers:
            self.last_left()

    def first_joined(self) -> None:
        """Called on every subscribe; subclasses start what they need."""

    def last_left(self) -> None:
        """Called when the last subscriber is gone."""


class Channel(FanOut):
    """One stream of one camera: its source, GOP cache and subscribers."""

    def __init__(
        self,
        camera: CameraConfig,
        stream: StreamName,
        url: str,
        settings: HubSettings,
        on_state: Callable[[Channel], None] | None = None,
    ) -> None:
        super().__init__(f"{camera.id}/{stream}", settings)
        self.camera = camera
        self.stream: StreamName = stream
        self._on_state = on_state
        self.source = CameraSource(
            self.name,
            url,
            label=camera.name,
            settings=camera.source_settings(),
            on_packet=self.publish,
            on_state=self._state_changed,
        )
        self._idle_close: asyncio.TimerHandle | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._online = asyncio.Event()
        self.pictures: PictureSource | None = None  # its decoder, made by pictures_of()

    @property
    def always_on(self) -> bool:
        return self.camera.always_on

    def _state_changed(self, _source: CameraSource) -> None:
        if self.source.state is SourceState.ONLINE:
            self._online.set()
        else:
            self._online.clear()
            self.clear_cache()  # never serve a picture from before an outage
        if self._on_state is not None:
            self._on_state(self)

    def reported_state(self) -> tuple[SourceState, str | None]:
        """What the camera is doing, for lists and viewers: its source's state here;
        a channel fed by another node says what that node reports (relay/peers)."""
        return self.source.state, self.source.last_error

    async def wait_online(self) -> None:
        """Until the camera sends; its stream info is known by then."""
        await self._online.wait()

    def start(self) -> None:
        if self.always_on:
            self.source.start()

    def update(self, camera: CameraConfig) -> None:
        """Take a reloaded camera whose source settings are unchanged, in place."""
        self.camera = camera
        if camera.always_on:
            self.first_joined()  # cancels an idle close, starts the source if needed
        elif not self.subscribers:
            self.last_left()  # now on demand and unwatched: closes after the grace

    def first_joined(self) -> None:
        if self._idle_close is not None:
            self._idle_close.cancel()
            self._idle_close = None
        self.source.start()

    def last_left(self) -> None:
        if not self.always_on and self.source.running:
            loop = asyncio.get_running_loop()
            self._idle_close = loop.call_later(self.camera.idle_timeout, self._close_idle)

    def _close_idle(self) -> None:
        self._idle_close = None
        if not self.subscribers:
            logger.info(
                "camera %s: no viewer for %.0f s, closing", self.name, self.camera.idle_timeout
            )
            self.clear_cache()
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
            self._add_channels(cam)

    def _add_channels(self, cam: CameraConfig) -> list[Channel]:
        made = [Channel(cam, "main", cam.main, self.settings, self.state_changed)]
        if cam.sub:
            made.append(Channel(cam, "sub", cam.sub, self.settings, self.state_changed))
        for channel in made:
            self.channels[(cam.id, channel.stream)] = channel
        return made

    async def apply(self, config: Config) -> CameraChanges:
        """Take a reloaded config: start added cameras, stop removed ones, restart
        those whose source settings changed, update the rest in place. Channels of
        unchanged cameras are left alone, and so are their viewers."""
        changes = camera_changes(self.config, config)
        self.config = config
        closing = [
            self.channels.pop((cam_id, channel.stream))
            for cam_id in changes.ended
            for channel in list(self.camera_channels(cam_id))
        ]
        async with asyncio.TaskGroup() as group:
            for channel in closing:
                group.create_task(channel.close())
        for cam_id in changes.added + changes.restarted:
            camera = config.camera(cam_id)
            assert camera is not None
            for channel in self._add_channels(camera):
                channel.start()
        for cam_id in changes.updated:
            camera = config.camera(cam_id)
            assert camera is not None
            for channel in self.camera_channels(cam_id):
                channel.update(camera)
        if changes:
            logger.info("cameras reloaded: %s", changes.as_dict())
        return changes

    def state_changed(self, channel: Channel) -> None:
        """Tell the state listeners (the bus, analysis, the catalog feeds)."""
        for listener in self.state_listeners:
            listener(channel)

    def start(self) -> None:
        for channel in self.channels.values():
            channel.start()

    async def close(self) -> None:
        async with asyncio.TaskGroup() as group:
            for channel in list(self.channels.values()):
                group.create_task(channel.close())

    def add_channel(self, channel: Channel) -> None:
        """A channel made after the start (a peer's camera); started at its first viewer."""
        self.channels[(channel.camera.id, channel.stream)] = channel
        channel.start()

    async def remove_channel(self, camera_id: str, stream: StreamName) -> None:
        channel = self.channels.pop((camera_id, stream), None)
        if channel is not None:
            await channel.close()

    def channel(self, camera_id: str, stream: StreamName = "main") -> Channel | None:
        return self.channels.get((camera_id, stream))

    def camera_channels(self, camera_id: str) -> Iterator[Channel]:
        for stream in ("main", "sub"):
            channel = self.channels.get((camera_id, stream))
            if channel is not None:
                yield channel

    def camera_error(self, camera_id: str) -> str | None:
        """The last error of the camera's first stream that is not online."""
        for channel in self.camera_channels(camera_id):
            state, error = channel.reported_state()
            if state is not SourceState.ONLINE:
                return error
        return None

    def camera_state(self, camera_id: str) -> SourceState:
        """Online if any stream is; otherwise the main stream's state."""
        states = [c.reported_state()[0] for c in self.camera_channels(camera_id)]
        if SourceState.ONLINE in states:
            return SourceState.ONLINE
        return states[0] if states else SourceState.OFFLINE
