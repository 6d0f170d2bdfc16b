"""One shared transcode for a stream browsers cannot take (H.265, H.264 B-frames).

The stream's one shared decoder (relay.media.pictures, which motion, tamper and
snapshots use too) hands every frame to this transcoder while it is watched; a
thread of its own encodes them to Constrained Baseline H.264 once per camera
stream, for all its viewers at once. A stream both analysed and watched is
decoded once. Frames wait for the encoder in a bounded queue: when the encoder
falls behind, frames are dropped and counted (an encoder needs no reference from
the source, so the next frame encodes as well as any).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from typing import Any

import av

from ingest.packet import MediaPacket
from relay.media.hub import Channel, FanOut
from relay.media.pictures import TIME_BASE, FrameTap, pictures_of

logger = logging.getLogger(__name__)

QUEUE_FRAMES = 15  # decoded pictures are big: a second at 15 fps
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
        self.frames_dropped = 0  # decoded frames the encoder was too far behind to take
        self.encoded = 0
        self._tap: FrameTap | None = None
        self._work: queue.Queue[av.VideoFrame | None] = queue.Queue(QUEUE_FRAMES)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._tap is not None

    def first_joined(self) -> None:
        if self._tap is not None:
            return
        logger.info("camera %s: transcoding to H.264 for browsers", self.channel.name)
        work: queue.Queue[av.VideoFrame | None] = queue.Queue(QUEUE_FRAMES)
        self._work = work
        self._stop = stop = threading.Event()
        self._thread = threading.Thread(
            target=self._encode,
            args=(work, stop, asyncio.get_running_loop()),
            name=f"encode-{self.channel.name}",
        )
        self._thread.daemon = True
        self._thread.start()
        self._tap = pictures_of(self.channel).tap(lambda frame: self._offer(work, frame))

    def _offer(self, work: queue.Queue[av.VideoFrame | None], frame: av.VideoFrame) -> None:
        try:
            work.put_nowait(frame)
        except queue.Full:
            self.frames_dropped += 1

    def last_left(self) -> None:
        if self._tap is not None:
            logger.info("camera %s: last viewer gone, transcoder stopped", self.channel.name)
        self._end()
        self.clear_cache()

    def _end(self) -> threading.Thread | None:
        """Off the decoder, and the encoder told to stop (it ends after at most
        the frame it is encoding); the thread, to join off the loop."""
        tap, self._tap = self._tap, None
        thread, self._thread = self._thread, None
        if tap is not None:
            tap.close()
        self._stop.set()
        with contextlib.suppress(queue.Full):  # if full, it sees the stop after one frame
            self._work.put_nowait(None)
        return thread

    async def close(self) -> None:
        thread = self._end()
        if thread is not None:
            await asyncio.to_thread(thread.join, 2.0)

    def _encode(
        self,
        work: queue.Queue[av.VideoFrame | None],
        stop: threading.Event,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        info = self.channel.source.info
        fps = (info.fps if info else None) or 25.0
        encoder: av.VideoCodecContext | None = None
        while not stop.is_set() and (frame := work.get()) is not None:
            if encoder is None or (encoder.width, encoder.height) != (frame.width, frame.height):
                encoder = _encoder(frame.width, frame.height, fps)
            for out in encoder.encode(frame):
                self.encoded += 1
                loop.call_soon_threadsafe(self._publish, stop, _packet(out))

    def _publish(self, stop: threading.Event, packet: MediaPacket) -> None:
        if not stop.is_set():  # nothing late from a transcode that has ended
            self.publish(packet)


def _packet(out: av.Packet[Any]) -> MediaPacket:
    return MediaPacket(
        kind="video",
        data=bytes(out),
        pts=out.pts,
        time_base=TIME_BASE,
        keyframe=out.is_keyframe,
        received=time.monotonic(),
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
