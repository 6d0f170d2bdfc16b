"""The segment writer: one thread per recorded stream, PyAV's MP4 muxer in it.

The camera's own packets are remuxed, never decoded, into fragmented MP4
(`frag_keyframe+empty_moov+default_base_moof`): a fragment per GOP, written and
flushed as the next keyframe comes, so kill -9 loses at most the fragment being
gathered. A file starts at a keyframe and is named after its wall-clock start in
milliseconds; its media time starts at 0, so start + media time = wall time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from ingest.packet import MediaPacket
from relay.record import fmp4
from relay.record.audio import AacSource, AudioFormat, add_aac_stream

logger = logging.getLogger(__name__)

# A fragment per GOP, each flushed to disk as it is complete. The muxer holds a
# packet until the other track has caught up with it: at most 1 s, so audio that
# stops does not hold the video's fragments back.
MUX_OPTIONS = {
    "movflags": "frag_keyframe+empty_moov+default_base_moof",
    "flush_packets": "1",
    "max_interleave_delta": "1000000",
}
MP4_CODECS = {"h264": "h264", "h265": "hevc"}
RETRY_SECONDS = 2.0  # after a write error, try a new file this much later
# Packets go to the writer thread in batches: at a keyframe (which completes a
# fragment), or when this many are gathered. The thread wakes about once a GOP,
# not once a frame. With audio, the muxer holds the keyframe (and so the fragment
# before it) until audio of the same time has come: audio that follows a
# keyframe goes at once, so the fragment reaches the disk as soon as it can.
BATCH = 32


@dataclass(frozen=True)
class VideoFormat:
    """The camera's video as a file's track describes it."""

    codec: str  # h264, h265
    width: int | None = None  # None: read off the first keyframe
    height: int | None = None


def picture_size(codec: str, keyframe: bytes) -> tuple[int, int]:
    """A keyframe's picture size, decoded once: for a camera whose size the
    demuxer did not know at connect time."""
    decoder: Any = av.CodecContext.create(MP4_CODECS[codec], "r")
    frames = [*decoder.decode(av.Packet(keyframe)), *decoder.decode(None)]
    if not frames:
        raise ValueError("a keyframe that does not decode")
    return frames[0].width, frames[0].height


@dataclass(frozen=True)
class Opened:
    path: Path
    start: float  # wall clock, s
    codec: str


@dataclass(frozen=True)
class Progress:
    path: Path
    end: float  # wall clock of the end of the last complete fragment
    bytes: int


@dataclass(frozen=True)
class Closed:
    path: Path
    end: float
    bytes: int


@dataclass(frozen=True)
class Failed:
    reason: str


WriterEvent = Opened | Progress | Closed | Failed
Queued = tuple[MediaPacket, VideoFormat, AudioFormat | None]
Batch = list[Queued]
CUT = "cut"  # end the open file; the next keyframe starts another
STOP = "stop"


def segment_path(root: Path, camera: str, stream: str, start: float) -> Path:
    day = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d")
    return root / camera / stream / day / f"{round(start * 1000)}.mp4"


def wall_time(packet: MediaPacket) -> float:
    """When the packet left the demuxer, on the wall clock."""
    return time.time() - (time.monotonic() - packet.received)


def decode_time(packet: MediaPacket) -> int:
    pts = packet.pts or 0
    return pts if packet.dts is None else packet.dts


def media_zero(keyframe: MediaPacket) -> float:
    """The wall time of media time 0 of a file that starts at this keyframe: its
    decode time, a reorder delay before it is shown (0 without B-frames)."""
    delay = ((keyframe.pts or 0) - decode_time(keyframe)) * keyframe.time_base
    return wall_time(keyframe) - float(delay)


class SegmentFile:
    """One open MP4 file: the camera's video and, when it has some, AAC audio.

    Media time 0 is the first keyframe's decode time: with B-frames that frame is
    shown `delay` later (MP4 composition offsets), and `start` is the wall time
    of media time 0, so start + media time is the wall time of every frame."""

    def __init__(
        self,
        path: Path,
        video: VideoFormat,
        packet: MediaPacket,
        start: float,
        audio: AacSource | None = None,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.video = video
        self.start = start
        self.base = decode_time(packet)
        self.time_base = packet.time_base
        self.last_dts = self.base - 1
        self.written = 0  # bytes on disk, after the last complete fragment
        self.fragment_end = self.keyframe_at = self.start
        self.announced = False  # told to the index
        self._out: Any = av.open(str(self.path), "w", format="mp4", options=MUX_OPTIONS)
        # The camera's own parameter sets describe the track (avcC/hvcC, so the
        # codec string a player is told is the camera's): PyAV takes them from
        # the first keyframe (extract_extradata), and no encoder is opened.
        if video.width is None or video.height is None:
            width, height = picture_size(video.codec, packet.data)
        else:
            width, height = video.width, video.height
        self._video = self._out.add_mux_stream(MP4_CODECS[video.codec], width=width, height=height)
        self._video.time_base = packet.time_base
        self._audio: Any = None
        self._audio_base = self._audio_last = 0
        if audio is not None:
            self._audio = add_aac_stream(self._out, audio.fmt)
            # the audio pts of media time 0, so that audio and video keep their timing
            self._audio_base = round(self.base * self.time_base / audio.time_base)
            self._audio_last = self._audio_base - 1

    def write(self, packet: MediaPacket, pts: int, dts: int) -> bool:
        """Mux one video packet; True if a fragment reached the disk with it."""
        if pts < dts:  # a frame shown before it is decoded: not a frame MP4 can hold
            return False
        out = av.Packet(packet.data)
        out.pts, out.dts = pts - self.base, dts - self.base
        out.time_base = self.time_base
        out.is_keyframe = packet.keyframe
        out.stream = self._video
        self.last_dts = dts
        if packet.keyframe:
            self.keyframe_at = self.start + float(out.pts * self.time_base)
        self._out.mux(out)
        return self._grew()

    def write_audio(self, data: bytes, pts: int) -> bool:
        """Mux one AAC access unit (pts in 1/rate); audio from before the file's
        first keyframe, or going back, is dropped."""
        if self._audio is None or pts <= self._audio_last:
            return False
        self._audio_last = pts
        out = av.Packet(data)
        out.pts = out.dts = pts - self._audio_base
        out.time_base = self._audio.time_base
        out.stream = self._audio
        self._out.mux(out)
        return self._grew()

    def _grew(self) -> bool:
        """A fragment reached the disk: it ends where the last keyframe starts."""
        size = os.path.getsize(self.path)
        grew = size > self.written and self.written > 0
        self.written = size
        if grew:
            self.fragment_end = self.keyframe_at
        return grew

    def seconds(self, pts: int) -> float:
        return float((pts - self.base) * self.time_base)

    def close(self) -> float:
        """Finish the file; the wall time it ends at, as its fragments say."""
        self._out.close()
        return self.start + fmp4.scan(self.path).duration

    def abandon(self) -> None:
        try:
            self._out.close()
        except Exception as exc:  # the disk that failed the write fails this too
            logger.debug("closing %s after an error: %s", self.path, exc)


class SegmentWriter:
    """Takes packets from the loop (`put`), writes them in its own thread and
    tells the loop what it did through `on_event` (called on the loop)."""

    def __init__(
        self,
        name: str,
        root: Path,
        *,
        camera: str,
        stream: str,
        segment_seconds: float,
        on_event: Callable[[WriterEvent], None],
        capacity: int = 600,  # packets
    ) -> None:
        self.name = name
        self.root, self.camera, self.stream = root, camera, stream
        self.segment_seconds = segment_seconds
        # The camera's formats as the recorder last saw them (set on the loop);
        # each packet goes to the thread with the formats it came under.
        self.video = VideoFormat("h264")
        self.audio: AudioFormat | None = None
        self._video = self.video  # the thread's: the formats of the packet at hand
        self._audio_fmt: AudioFormat | None = None
        self._aac: AacSource | None = None  # the writer thread's own
        self._on_event = on_event
        self._queue: queue.Queue[Batch | str] = queue.Queue()
        self.capacity = capacity  # packets handed and not yet written, at most
        self._batch: Batch = []  # the loop's: packets not yet handed to the thread
        self._handed = 0  # packets handed (the loop's count)
        self._written = 0  # packets taken by the thread (the thread's count)
        self._after_keyframe = False  # the loop's: a keyframe went, its audio follows
        self._loop: Any = None
        self._thread: threading.Thread | None = None
        self._file: SegmentFile | None = None
        self._retry_at = 0.0
        self.dropped = 0

    def start(self, loop: Any) -> None:
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name=f"record-{self.name}", daemon=True)
        self._thread.start()

    def put(self, item: MediaPacket | str) -> bool:
        """Give the thread a packet, with the formats it came under, or CUT (after
        the packets before it). False if the writer is behind by its whole queue:
        what was not yet handed over is dropped."""
        if isinstance(item, str):
            handed = self._hand_batch()
            self._queue.put_nowait(item)
            return handed
        self._batch.append((item, self.video, self.audio))
        if item.kind == "video":
            self._after_keyframe = item.keyframe
        if self._after_keyframe or len(self._batch) >= BATCH:
            return self._hand_batch()
        return True

    def _hand_batch(self) -> bool:
        batch, self._batch = self._batch, []
        if not batch:
            return True
        if self._handed - self._written + len(batch) > self.capacity:
            self.dropped += len(batch)
            return False
        self._handed += len(batch)
        self._queue.put_nowait(batch)
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """Blocking: finish the open file and end the thread."""
        if self._thread is None:
            return
        # the loop puts no more (the recorder's subscription is closed): the
        # packets it gathered last go before STOP
        batch, self._batch = self._batch, []
        if batch:
            self._queue.put_nowait(batch)
        self._queue.put_nowait(STOP)
        self._thread.join(timeout)
        self._thread = None

    def _tell(self, event: WriterEvent) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody left to tell
            self._loop.call_soon_threadsafe(self._on_event, event)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item == STOP:
                self._close()
                return
            if isinstance(item, str):  # CUT
                self._close()
            else:
                self._written += len(item)
                for packet, self._video, self._audio_fmt in item:
                    try:
                        self._packet(packet)
                    except (OSError, av.error.FFmpegError) as exc:
                        self._fail(exc)
                    except Exception as exc:  # a packet the muxer cannot take: said, not fatal
                        logger.exception("camera %s: recording failed", self.name)
                        self._fail(exc)

    def _packet(self, packet: MediaPacket) -> None:
        if packet.kind == "audio":
            self._audio_packet(packet)
            return
        current = self._file
        if current is not None:
            pts = packet.pts
            if pts is None:  # the camera gave no time: one frame after the last
                pts = current.last_dts + round(Fraction(1, 25) / current.time_base)
            dts = pts if packet.dts is None else packet.dts
            full = packet.keyframe and current.seconds(pts) >= self.segment_seconds
            same = current.video == self._video  # else the camera came back changed
            if dts > current.last_dts and same and not full:
                self._write(current, current.write(packet, pts, dts))
                return
            self._close()  # full, changed, or time went back: a new file, never a broken timeline
        # A file starts at a keyframe with a time (the first one after an RTSP
        # connect can come without: its GOP is not recorded).
        first = packet.pts
        if packet.keyframe and first is not None and time.monotonic() >= self._retry_at:
            current = self._open(packet)
            self._write(current, current.write(packet, first, decode_time(packet)))

    def _audio_packet(self, packet: MediaPacket) -> None:
        """Audio goes into the open file; before a file's first keyframe there is none."""
        current, audio = self._file, self._audio_source()
        if current is None or audio is None:
            return
        try:
            units = audio.units(packet)
        except av.error.FFmpegError as exc:  # a broken audio packet costs itself only
            logger.debug("camera %s: audio packet dropped: %s", self.name, exc)
            return
        for data, pts in units:
            self._write(current, current.write_audio(data, pts))

    def _audio_source(self) -> AacSource | None:
        fmt = self._audio_fmt
        if fmt is None:
            self._aac = None
        elif self._aac is None or self._aac.fmt != fmt:
            self._aac = AacSource(fmt, self.name)
        return self._aac if self._aac is not None and self._aac.usable else None

    def _write(self, current: SegmentFile, grew: bool) -> None:
        if grew:
            self._announce(current)
            self._tell(Progress(current.path, current.fragment_end, current.written))

    def _open(self, packet: MediaPacket) -> SegmentFile:
        start = media_zero(packet)
        path = segment_path(self.root, self.camera, self.stream, start)
        self._file = SegmentFile(path, self._video, packet, start, self._audio_source())
        return self._file

    def _announce(self, current: SegmentFile) -> None:
        """A file is indexed once a fragment of it is on disk: a disk that refuses
        every write leaves no empty files and rows behind, however often it is tried."""
        if not current.announced:
            current.announced = True
            self._tell(Opened(current.path, current.start, current.video.codec))

    def _close(self) -> None:
        current, self._file = self._file, None
        if current is None:
            return
        try:
            end = current.close()
            size = os.path.getsize(current.path)
        except (OSError, av.error.FFmpegError) as exc:
            self._file = current
            self._fail(exc)
            return
        if size <= current.written and not current.announced:
            current.path.unlink(missing_ok=True)  # closed before its first fragment
            return
        self._announce(current)
        self._tell(Closed(current.path, end, size))

    def _fail(self, exc: BaseException) -> None:
        current, self._file = self._file, None
        if current is not None:
            current.abandon()
            if current.announced:  # what it holds up to its last complete fragment stays
                with contextlib.suppress(OSError):
                    os.truncate(current.path, current.written)
                self._tell(Closed(current.path, current.fragment_end, current.written))
            else:
                with contextlib.suppress(OSError):
                    current.path.unlink(missing_ok=True)
        self._retry_at = time.monotonic() + RETRY_SECONDS
        reason = getattr(exc, "strerror", None) or str(exc)
        logger.warning("camera %s: recording stopped: %s", self.name, reason)
        self._tell(Failed(f"cannot write recordings: {reason}"))
