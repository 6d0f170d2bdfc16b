"""One shared transcode for a stream browsers cannot take (H.265, H.264 B-frames).

Decoded and encoded to Constrained Baseline H.264 once per camera stream, in a
thread of its own, for all its viewers at once; it runs only while watched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from fractions import Fraction

import av

from ingest.packet import MediaPacket
from ingest.tasks import cancel_and_wait
from relay.media.hub import Channel, FanOut

logger = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 90000)
QUEUE_PACKETS = 120
KEYFRAME_SECONDS = 2.0
# What every browser decodes: Constrained Baseline, no B-frames, no lookahead.
BROWSER_H264 = {"preset": "veryfast", "tune": "zerolatency", "profile": "baseline"}


def needs_transcode(channel: Channel) -> bool:
    """H.265, or H.264 with B-frames. (Which H.264 profiles a viewer takes as they
    are is the answer's business: relay.webrtc.codecs.answer_profile.)"""
    info = channel.source.info
    return info is not None and (info.codec != "h264" or info.has_b_frames)


class Transcoder(FanOut):
    def __init__(self, channel: Channel) -> None:
        super().__init__(f"{channel.name}/transcoded", channel.settings)
        self.channel = channel
        self.dropped = 0
        self._task: asyncio.Task[None] | None = None

    def first_joined(self) -> None:
        if self._task is None:
            logger.info("camera %s: transcoding to H.264 for browsers", self.channel.name)
            self._task = asyncio.create_task(self._run(), name=f"transcode {self.name}")

    def last_left(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            logger.info("camera %s: last viewer gone, transcoder stopped", self.channel.name)
            task.cancel()
        self.clear_cache()

    async def close(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        sub = self.channel.subscribe(frozenset(("video",)))
        work: queue.Queue[MediaPacket | None] = queue.Queue(QUEUE_PACKETS)
        thread = threading.Thread(
            target=self._work, args=(work, loop), name=f"transcode-{self.channel.name}"
        )
        thread.daemon = True
        thread.start()
        try:
            while True:
                packet = await sub.get()
                try:
                    work.put_nowait(packet)
                except queue.Full:
                    self.dropped += 1
        finally:
            sub.close()
            with contextlib.suppress(queue.Empty):
                while True:  # only this task puts: once drained, the stop mark fits
                    work.get_nowait()
            work.put_nowait(None)
            await asyncio.to_thread(thread.join, 2.0)

    def _work(self, work: queue.Queue[MediaPacket | None], loop: asyncio.AbstractEventLoop) -> None:
        info = self.channel.source.info
        decoder = av.CodecContext.create("hevc" if info and info.codec == "h265" else "h264", "r")
        encoder: av.VideoCodecContext | None = None
        fps = (info.fps if info else None) or 25.0
        while (packet := work.get()) is not None:
            try:
                source = av.Packet(packet.data)
                source.pts = packet.pts
                source.time_base = packet.time_base
                frames = decoder.decode(source)
            except av.error.FFmpegError:
                continue  # until the next keyframe
            for frame in frames:
                if encoder is None:
                    encoder = _encoder(frame.width, frame.height, fps)
                if frame.pts is not None:
                    frame.pts = int(frame.pts * packet.time_base / TIME_BASE)
                frame.time_base = TIME_BASE
                frame.pict_type = av.video.frame.PictureType.NONE
                for out in encoder.encode(frame):
                    loop.call_soon_threadsafe(
                        self.publish,
                        MediaPacket(
                            "video",
                            bytes(out),
                            out.pts,
                            TIME_BASE,
                            out.is_keyframe,
                            time.monotonic(),
                        ),
                    )


def _encoder(width: int, height: int, fps: float) -> av.VideoCodecContext:
    encoder = av.CodecContext.create("libx264", "w")
    assert isinstance(encoder, av.VideoCodecContext)
    encoder.width, encoder.height = width, height
    encoder.pix_fmt = "yuv420p"
    encoder.time_base = TIME_BASE
    gop = max(1, round(fps * KEYFRAME_SECONDS))
    encoder.options = {
        **BROWSER_H264,
        "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:repeat-headers=1:bframes=0",
    }
    encoder.open()
    return encoder
