"""Decoded pictures, once per stream, for whoever needs them (motion, tamper,
snapshots, the transcoder).

A `PictureSource` belongs to one Channel. The first `watch()` or `tap()` starts
it: a task takes the channel's video packets into a bounded queue and a thread of
its own decodes them. Each watcher asks for a rate and is handed a `Picture` at
that rate, in the decoder's thread; a tap (the transcoder) is handed every frame.
Reference frames are always decoded (the next frames need them); a frame nothing
refers to is decoded only when a tap is on or a watcher is due, and frames nobody
is due for are never converted. After the last watch and tap close, the task and
its thread stop and the stream is no longer decoded.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal, TypeVar

import av
import numpy as np
from av.video.reformatter import VideoReformatter
from PIL import Image

from ingest.packet import MediaPacket
from ingest.tasks import cancel_and_wait
from relay.media.hub import Channel, SubscriptionClosed

logger = logging.getLogger(__name__)
T = TypeVar("T")

QUEUE_PACKETS = 90
TIME_BASE = Fraction(1, 90000)  # of the frames handed out
SMALL_HEIGHT = 100  # analysis works on luma this many rows high
JPEG_MAX_WIDTH = 960
FRESH_SECONDS = 2.0  # a decoded picture this recent serves a snapshot


@dataclass(frozen=True, slots=True)
class Picture:
    """One decoded picture: the frame itself, its luma shrunk for analysis, and when."""

    frame: av.VideoFrame
    luma: np.ndarray  # uint8, SMALL_HEIGHT rows (fewer if the picture is smaller)
    time: float  # wall clock
    monotonic: float

    def jpeg(self) -> bytes:
        """Blocking (a few ms): call it in a thread, never on the loop."""
        return encode_jpeg(self.frame)


def encode_jpeg(frame: av.VideoFrame) -> bytes:
    image = Image.fromarray(frame.to_ndarray(format="rgb24"))
    if image.width > JPEG_MAX_WIDTH:
        image = image.resize((JPEG_MAX_WIDTH, image.height * JPEG_MAX_WIDTH // image.width))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=80)
    return out.getvalue()


def small_luma(frame: av.VideoFrame, reformatter: VideoReformatter | None = None) -> np.ndarray:
    """The luma alone, shrunk to SMALL_HEIGHT rows by area averaging in swscale.
    Pass the decoder's own reformatter: it keeps its scaler from picture to picture
    (0.1 ms for 640x360; a fresh one each time costs 4 ms)."""
    height = min(SMALL_HEIGHT, frame.height)
    width = max(1, round(frame.width * height / frame.height))
    # Kept in the camera's own range (16-235 mostly): a range conversion to
    # full-range gray would cost five times the scaling.
    small = (reformatter or VideoReformatter()).reformat(
        frame,
        width=width,
        height=height,
        format="gray8",
        interpolation="AREA",
        src_color_range=frame.color_range,
        dst_color_range=frame.color_range,
    )
    luma: np.ndarray = small.to_ndarray()
    return luma


class PictureWatch:
    """A consumer's standing order: `on_picture(picture)` about `fps` times a second,
    called in the decoder's thread (quick work only; hop to the loop yourself)."""

    def __init__(
        self, source: PictureSource, fps: float, on_picture: Callable[[Picture], None]
    ) -> None:
        self.source = source
        self.period = 1.0 / fps
        self.on_picture = on_picture
        self.next_due = 0.0
        self.handed = 0

    def close(self) -> None:
        self.source.unwatch(self)


class FrameTap:
    """A consumer of every decoded frame at the camera's full rate (the transcoder):
    `on_frame(frame)` in the decoder's thread. Frames are shared: read them, never
    change them; their pts are in TIME_BASE."""

    def __init__(self, source: PictureSource, on_frame: Callable[[av.VideoFrame], None]) -> None:
        self.source = source
        self.on_frame = on_frame

    def close(self) -> None:
        self.source.untap(self)


class PictureSource:
    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        # Replaced whole, never changed in place: the decoder's thread reads them.
        self.watches: tuple[PictureWatch, ...] = ()
        self.taps: tuple[FrameTap, ...] = ()
        self.decoded = 0
        self.dropped = 0  # packets lost to a full queue (then up to the next keyframe)
        self.starts = 0  # times the decoder started (a thread each time)
        # CPU seconds of the decoder's thread: decoding, and the consumers' own work
        self.decode_seconds = 0.0
        self.watcher_seconds = 0.0
        self.latest: tuple[av.VideoFrame, float] | None = None  # (frame, monotonic)
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None

    def watch(self, fps: float, on_picture: Callable[[Picture], None]) -> PictureWatch:
        watch = PictureWatch(self, fps, on_picture)
        self.watches = (*self.watches, watch)
        self._start()
        return watch

    def unwatch(self, watch: PictureWatch) -> None:
        self.watches = tuple(w for w in self.watches if w is not watch)
        self._stop_if_unneeded()

    def tap(self, on_frame: Callable[[av.VideoFrame], None]) -> FrameTap:
        """Every frame, decoded at full rate while the tap is on."""
        tap = FrameTap(self, on_frame)
        self.taps = (*self.taps, tap)
        self._start()
        return tap

    def untap(self, tap: FrameTap) -> None:
        self.taps = tuple(t for t in self.taps if t is not tap)
        self._stop_if_unneeded()

    def _start(self) -> None:
        if self._task is None:
            logger.info("camera %s: decoding pictures", self.channel.name)
            self.starts += 1
            self._task = asyncio.create_task(self._run(), name=f"pictures {self.channel.name}")

    def _stop_if_unneeded(self) -> None:
        if not self.watches and not self.taps and self._task is not None:
            logger.info("camera %s: nobody needs pictures, decoder stopped", self.channel.name)
            self._task.cancel()
            self._task = None
            self.latest = None

    async def close(self) -> None:
        self.watches, self.taps = (), ()
        task, self._task = self._task, None
        await cancel_and_wait(task)

    def fresh_frame(self) -> av.VideoFrame | None:
        """The newest decoded frame if recent enough to stand for the camera's picture."""
        latest = self.latest
        if latest is None or time.monotonic() - latest[1] > FRESH_SECONDS:
            return None
        return latest[0]

    async def _run(self) -> None:
        sub = self.channel.subscribe(frozenset(("video",)))
        work: queue.Queue[MediaPacket | None] = queue.Queue(QUEUE_PACKETS)
        stop = threading.Event()
        thread = threading.Thread(
            target=self._decode, args=(work, stop), name=f"pictures-{self.channel.name}"
        )
        thread.daemon = True
        thread.start()
        need_keyframe = False

        def offer(packet: MediaPacket) -> bool:
            nonlocal need_keyframe
            if need_keyframe and not packet.keyframe:
                self.dropped += 1
                return True
            try:
                work.put_nowait(packet)
                need_keyframe = False
            except queue.Full:  # a P-frame without its reference is garbage
                self.dropped += 1
                need_keyframe = True
            return True

        # Handed straight from the publish while this task waits: no task switch
        # per packet (the cached GOP it starts with comes through get()).
        sub.direct = offer
        try:
            while True:
                try:
                    offer(await sub.get())
                except SubscriptionClosed:
                    return  # the channel closed (node shutdown) before its consumers did
        finally:
            sub.close()
            stop.set()
            with contextlib.suppress(queue.Full):
                work.put_nowait(None)
            await asyncio.to_thread(thread.join, 2.0)

    def _decode(self, work: queue.Queue[MediaPacket | None], stop: threading.Event) -> None:
        decoder: av.VideoCodecContext | None = None
        reformatter = VideoReformatter()
        while not stop.is_set() and (packet := work.get()) is not None:
            if decoder is None:
                decoder = self._decoder()
            began = time.thread_time()
            try:
                frames = decoder.decode(self._packet(packet, decoder))
            except av.error.FFmpegError:
                continue  # until the next keyframe mends it
            finally:
                decoded = time.thread_time()
                self.decode_seconds += decoded - began
            for frame in frames:
                self._decoded(frame, packet, reformatter)
            self.watcher_seconds += time.thread_time() - decoded

    def _packet(self, packet: MediaPacket, decoder: av.VideoCodecContext) -> av.Packet[Any]:
        """The packet for the decoder, told whether to decode a frame nobody refers
        to: only if a tap takes every frame or a watch is due (codecs whose every
        frame is a reference, as most cameras send, decode all of them anyway)."""
        wanted = bool(self.taps) or any(time.monotonic() >= w.next_due for w in self.watches)
        skip: Literal["DEFAULT", "NONREF"] = "DEFAULT" if wanted else "NONREF"
        if decoder.skip_frame != skip:
            decoder.skip_frame = skip
        source = av.Packet(packet.data)
        source.pts = packet.pts  # the frame's pts, in the packet's time base
        return source

    def _decoder(self) -> av.VideoCodecContext:
        info = self.channel.source.info
        decoder = av.CodecContext.create("hevc" if info and info.codec == "h265" else "h264", "r")
        assert isinstance(decoder, av.VideoCodecContext)
        decoder.thread_count = 1  # one thread per stream already; many streams share the cores
        return decoder

    def _decoded(
        self, frame: av.VideoFrame, packet: MediaPacket, reformatter: VideoReformatter
    ) -> None:
        now = time.monotonic()
        self.decoded += 1
        if taps := self.taps:
            _for_encoders(frame, packet.time_base)  # before anyone else has the frame
        self.latest = (frame, now)
        for tap in taps:
            self._hand(tap.on_frame, frame)
        due = [w for w in self.watches if now >= w.next_due]
        if not due:
            return
        picture = Picture(frame, small_luma(frame, reformatter), time.time(), now)
        for watch in due:
            # Keep the asked rate on average; after a gap, start counting afresh.
            late = now - watch.next_due >= watch.period
            watch.next_due = now + watch.period if late else watch.next_due + watch.period
            watch.handed += 1
            self._hand(watch.on_picture, picture)

    def _hand(self, consumer: Callable[[T], None], item: T) -> None:
        try:
            consumer(item)
        except Exception:
            logger.exception("camera %s: a picture consumer failed", self.channel.name)


def _for_encoders(frame: av.VideoFrame, base: Fraction) -> None:
    """Before any tap has the frame: its pts in TIME_BASE, and no picture type (an
    encoder picks its own keyframes)."""
    if frame.pts is not None and base != TIME_BASE:  # RTSP's is 1/90000
        # In integers: Fraction arithmetic takes 12 us a frame.
        frame.pts = frame.pts * base.numerator * TIME_BASE.denominator // base.denominator
    frame.time_base = TIME_BASE
    frame.pict_type = av.video.frame.PictureType.NONE


def pictures_of(channel: Channel) -> PictureSource:
    """The channel's one PictureSource, made at the first ask."""
    if channel.pictures is None:
        channel.pictures = PictureSource(channel)
    source: PictureSource = channel.pictures
    return source
