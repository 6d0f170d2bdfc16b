"""One recorded stream: a hub subscription feeding a SegmentWriter thread.

The recorder's state is its own, never the camera's: `recording`, `waiting`
(the camera sends nothing; its gap stays a gap), or `error` with the reason (a
full or read-only disk), from which it comes back by itself when a file can be
written again.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

from ingest.packet import MediaPacket, StreamInfo
from ingest.tasks import cancel_and_wait
from relay.config import CameraConfig
from relay.db import Database
from relay.media.hub import Channel, SubscriptionClosed
from relay.record import index
from relay.record.audio import audio_format
from relay.record.writer import (
    CUT,
    Closed,
    Failed,
    Opened,
    Progress,
    SegmentWriter,
    VideoFormat,
    WriterEvent,
)

logger = logging.getLogger(__name__)

GAP_SECONDS = 3.0  # no packet this long: the file ends, the next keyframe starts one


class Recorder:
    def __init__(
        self,
        camera: CameraConfig,
        channel: Channel,
        root: Path,
        db: Database,
        segment_seconds: float,
    ) -> None:
        self.camera = camera
        self.channel = channel
        self.root = root
        self.db = db
        self.state = "starting"
        self.reason: str | None = None
        self.open_segment: tuple[float, float] | None = None  # wall start, end so far
        self.writer = SegmentWriter(
            channel.name,
            root,
            camera=camera.id,
            stream=channel.stream,
            segment_seconds=segment_seconds,
            on_event=self._event,
        )
        self._task: asyncio.Task[None] | None = None
        self._skip_to_keyframe = False
        self._last = 0.0  # time.monotonic() of the last packet taken
        self._info: StreamInfo | None = None

    def start(self) -> None:
        self.writer.start(asyncio.get_running_loop())
        self._task = asyncio.create_task(self._run(), name=f"record {self.channel.name}")

    async def close(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        await asyncio.to_thread(self.writer.stop)

    async def _run(self) -> None:
        sub = self.channel.subscribe()
        # Handed straight from the hub's publish while this task waits: no task
        # switch per packet (the cached GOP it starts with comes through get()).
        sub.direct = self._direct
        self._last = time.monotonic()
        try:
            while True:
                left = GAP_SECONDS - (time.monotonic() - self._last)
                try:
                    async with asyncio.timeout(left if left > 0 else GAP_SECONDS):
                        packet = await sub.get()
                except TimeoutError:
                    if time.monotonic() - self._last >= GAP_SECONDS:
                        self._gap()
                    continue
                self._direct(packet)
        except SubscriptionClosed:
            pass
        finally:
            sub.close()

    def _direct(self, packet: MediaPacket) -> bool:
        if packet.kind == "video":  # audio that flows on alone does not hold a file open
            self._last = time.monotonic()
        self._forward(packet)
        return True

    def _gap(self) -> None:
        if self.state not in {"waiting", "error"}:
            logger.info("camera %s: nothing to record, the file ends here", self.channel.name)
            self.state = "waiting"
        self.open_segment = None
        self.writer.put(CUT)

    def _forward(self, packet: MediaPacket) -> None:
        info = self.channel.source.info
        if info is not self._info and info is not None:
            self._learn(info)
        if self._skip_to_keyframe:
            if not packet.keyframe or packet.kind != "video":
                return
            self._skip_to_keyframe = not self.writer.put(CUT)
            if self._skip_to_keyframe:
                return
        if packet.kind == "audio" and self.writer.audio is None:
            return
        if not self.writer.put(packet):
            # The disk is behind by a whole queue: a new file from the next
            # keyframe, so no file ever holds a stretch of missing frames.
            logger.warning("camera %s: recorder behind, frames dropped", self.channel.name)
            self._skip_to_keyframe = True

    def _learn(self, info: StreamInfo) -> None:
        """What the camera sends, once each time it changes (a reconnect)."""
        self._info = info
        self.writer.video = VideoFormat(info.codec, info.width, info.height)
        self.writer.audio = audio_format(info)
        if info.audio_codec and self.writer.audio is None:
            logger.info(
                "camera %s: its %s audio is not recorded (MP4 in browsers takes AAC)",
                self.channel.name,
                info.audio_codec,
            )

    def _relative(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    def _event(self, event: WriterEvent) -> None:
        if isinstance(event, Opened):
            self.state, self.reason = "recording", None
            self.open_segment = (event.start, event.start)
            rel = self._relative(event.path)
            self._db(
                lambda c: index.add(
                    c,
                    self.camera.id,
                    stream=self.channel.stream,
                    start=event.start,
                    path=rel,
                    codec=event.codec,
                )
            )
        elif isinstance(event, Progress):
            if self.open_segment is not None:
                self.open_segment = (self.open_segment[0], event.end)
            rel = self._relative(event.path)
            self._db(lambda c: index.progress(c, rel, event.end, event.bytes, closed=False))
        elif isinstance(event, Closed):
            self.open_segment = None
            rel = self._relative(event.path)
            self._db(lambda c: index.progress(c, rel, event.end, event.bytes, closed=True))
        elif isinstance(event, Failed):
            if self.state != "error":
                logger.warning("camera %s: recorder error: %s", self.channel.name, event.reason)
            self.state, self.reason = "error", event.reason
            self.error_since: float | None = time.time()

    def _db(self, work: Callable[[sqlite3.Connection], object]) -> None:
        def done(result: Future[object]) -> None:
            error = result.exception()
            if error is not None:
                logger.warning("camera %s: index not updated: %s", self.channel.name, error)

        try:
            self.db.submit(work, done)
        except RuntimeError:  # the database closed first, at shutdown; the scan mends it
            logger.info("camera %s: index closed before the recorder", self.channel.name)

    def status(self) -> dict[str, object]:
        return {
            "state": self.state,
            "reason": self.reason,
            "stream": self.channel.stream,
            "dropped": self.writer.dropped,
        }
